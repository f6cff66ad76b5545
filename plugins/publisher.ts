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
  const { config } = fastify
  const bus = new PubSubBus({
    url: config.REDIS_URL,
    prefix: config.REDIS_PREFIX,
    log: fastify.log,
    metrics: fastify.metrics,
    bufferMaxBytes: config.REDIS_BUFFER_MAX_BYTES,
    maxEventsPerCall: config.REDIS_BUFFER_MAX_EVENTS_PER_CALL,
    stallTimeoutMs: config.REDIS_STALL_TIMEOUT_MS
  })
  fastify.decorate('publisher', bus)
  fastify.addHook('onClose', async () => {
    await bus.close()
  })
}, { name: 'publisher', fastify: '5.x', dependencies: ['metrics'], decorators: { fastify: ['config'] } })
