import underPressure from '@fastify/under-pressure'
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { LiveCalls } from '../src/calls/live-calls.js'
import { PlaybackBudget } from '../src/calls/playback-budget.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Every live call of this process. */
    liveCalls: LiveCalls
    /** onRequest hook for ingest routes: 503 with Retry-After while shutting down, full or under pressure. */
    admitCall (request: FastifyRequest, reply: FastifyReply): Promise<void>
  }
}

const RETRY_AFTER_SECONDS = 5

/**
 * Decorates the instance with its live calls and the admission hook of the ingest routes. Admission refuses
 * new upgrades while shutting down, at MAX_CONCURRENT_CALLS, while Redis has not been reached since the start, or
 * while the event loop lags past EVENT_LOOP_DELAY_LIMIT_MS (@fastify/under-pressure); it never touches open
 * connections.
 */
export default fp(async (fastify) => {
  const { config, metrics, publisher } = fastify
  const liveCalls = new LiveCalls({
    bus: publisher,
    metrics,
    log: fastify.log,
    maxCalls: config.MAX_CONCURRENT_CALLS,
    keepalive: {
      pingIntervalMs: config.WS_PING_INTERVAL_MS,
      pongTimeoutMs: config.WS_PONG_TIMEOUT_MS,
      idleTimeoutMs: config.IDLE_TIMEOUT_MS,
      startTimeoutMs: config.START_TIMEOUT_MS
    },
    inbound: { maxAudioSpeed: config.INBOUND_MAX_AUDIO_SPEED, maxMessagesPerS: config.INBOUND_MAX_MESSAGES_PER_S },
    playback: {
      leadMs: config.PLAYBACK_LEAD_MS,
      maxBufferMs: config.PLAYBACK_MAX_BUFFER_MS,
      maxMessageBytes: config.PLAYBACK_MAX_MESSAGE_BYTES,
      budget: new PlaybackBudget(config.PLAYBACK_MAX_TOTAL_BYTES, metrics)
    },
    claimTtlMs: config.CALL_CLAIM_TTL_MS
  })
  fastify.decorate('liveCalls', liveCalls)
  fastify.addHook('onClose', async () => liveCalls.close())

  // under-pressure only measures here; ingest upgrades consult it through admitCall, and nothing else is refused.
  await fastify.register(underPressure, { maxEventLoopDelay: config.EVENT_LOOP_DELAY_LIMIT_MS, pressureHandler: () => undefined })

  fastify.decorate('admitCall', async function admitCall (_request: FastifyRequest, reply: FastifyReply) {
    // A Redis never reached is most likely a wrong REDIS_URL: a test call must fail, not stream into the buffer.
    const reason = liveCalls.refusal() ?? (publisher.unreachableSinceStart ? 'redis_unreachable' : null) ??
      (fastify.isUnderPressure() ? 'under_pressure' : null)
    if (reason === null) return
    metrics.upgradesRefused.inc({ reason })
    reply.log.warn({ reason }, 'upgrade refused: not admitted')
    return reply.code(503).header('retry-after', RETRY_AFTER_SECONDS).send({ statusCode: 503, error: 'Service Unavailable', message: REFUSALS[reason] })
  })
}, { name: 'live-calls', fastify: '5.x', dependencies: ['metrics', 'publisher'], decorators: { fastify: ['config'] } })

const REFUSALS = {
  shutting_down: 'the gateway is shutting down; connect to another instance',
  max_calls: 'the gateway is at its call limit',
  redis_unreachable: 'the gateway cannot reach Redis',
  under_pressure: 'the gateway is overloaded'
}
