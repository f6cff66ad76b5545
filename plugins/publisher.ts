import fp from 'fastify-plugin'
import type { Publisher } from '../src/publisher/publisher.js'
import { RedisPublisher } from '../src/publisher/redis-publisher.js'

declare module 'fastify' {
  interface FastifyInstance {
    publisher: Publisher
  }
}

/** Decorates the instance with the Redis publisher and closes its connection in onClose, after the sockets. */
export default fp(async (fastify) => {
  const { REDIS_URL, REDIS_PREFIX, REDIS_BUFFER_MAX_BYTES } = fastify.config
  const publisher = new RedisPublisher({
    url: REDIS_URL,
    prefix: REDIS_PREFIX,
    log: fastify.log.child({ component: 'publisher' }),
    metrics: fastify.metrics,
    bufferMaxBytes: REDIS_BUFFER_MAX_BYTES
  })
  fastify.decorate('publisher', publisher)
  fastify.addHook('onClose', async () => {
    await publisher.close()
  })
}, { name: 'publisher', fastify: '5.x', dependencies: ['metrics'], decorators: { fastify: ['config'] } })
