import fp from 'fastify-plugin'
import type { Bus } from '../src/bus/bus.js'
import { createBus } from '../src/bus/create-bus.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The bus to Redis: call events and audio frames out, playback in. */
    publisher: Bus
  }
}

/** Owns every Redis connection of the process, through the bus it decorates with, and closes them in onClose. */
export default fp(async (fastify) => {
  const bus = createBus(fastify.config, fastify.log, fastify.metrics)
  fastify.decorate('publisher', bus)
  fastify.addHook('onClose', async () => {
    await bus.close()
  })
}, { name: 'publisher', fastify: '5.x', dependencies: ['metrics'], decorators: { fastify: ['config'] } })
