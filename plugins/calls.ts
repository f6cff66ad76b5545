import fp from 'fastify-plugin'
import { CallRegistry } from '../src/calls/call-registry.js'

declare module 'fastify' {
  interface FastifyInstance {
    calls: CallRegistry
    /** True from the moment shutdown begins; readiness fails and live calls are told to go. */
    shuttingDown: boolean
  }
}

/** The one place per-call state lives in this process, and the shutdown flag that goes with it. */
export default fp(async (fastify) => {
  fastify.decorate('calls', new CallRegistry())
  fastify.decorate('shuttingDown', false)
  fastify.addHook('preClose', async () => {
    fastify.shuttingDown = true
  })
}, { name: 'calls', fastify: '5.x' })
