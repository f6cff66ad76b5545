import fp from 'fastify-plugin'
import { PlaybackSubscriber } from '../src/playback/playback-subscriber.js'
import type { PlaybackService } from '../src/calls/stream-session.js'

declare module 'fastify' {
  interface FastifyInstance {
    playback: PlaybackService
  }
}

/** Decorates the instance with playback: one shared subscriber connection, closed in onClose, and its counters. */
export default fp(async (fastify) => {
  const { REDIS_URL, REDIS_PREFIX, PLAYBACK_LEAD_MS, PLAYBACK_MAX_BUFFER_MS } = fastify.config
  const subscriber = new PlaybackSubscriber({
    url: REDIS_URL,
    prefix: REDIS_PREFIX,
    log: fastify.log.child({ component: 'playback' }),
    orphaned: () => fastify.metrics.playbackDropped.inc({ reason: 'call_ended' })
  })
  fastify.decorate('playback', { subscriber, leadMs: PLAYBACK_LEAD_MS, maxBufferMs: PLAYBACK_MAX_BUFFER_MS })
  fastify.addHook('onClose', async () => {
    await subscriber.close()
  })
}, { name: 'playback', fastify: '5.x', dependencies: ['metrics'], decorators: { fastify: ['config'] } })
