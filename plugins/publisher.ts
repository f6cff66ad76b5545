import fp from 'fastify-plugin'
import type { Bus } from '../src/bus/bus.js'
import { PubSubBus } from '../src/bus/pubsub-bus.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The bus to Redis: call events and audio frames out, playback in. */
    publisher: Bus
  }
}

/** Owns every Redis connection of the process, through the bus it decorates with, and closes them in onClose. */
export default fp(async (fastify) => {
  const { REDIS_URL, REDIS_PREFIX, REDIS_BUFFER_MAX_BYTES } = fastify.config
  const bus = new PubSubBus({
    url: REDIS_URL,
    prefix: REDIS_PREFIX,
    log: fastify.log,
    metrics: fastify.metrics,
    bufferMaxBytes: REDIS_BUFFER_MAX_BYTES
  })
  fastify.decorate('publisher', bus)
  fastify.addHook('onClose', async () => {
    await bus.close()
  })
}, { name: 'publisher', fastify: '5.x', dependencies: ['metrics'], decorators: { fastify: ['config'] } })
