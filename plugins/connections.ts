import underPressure from '@fastify/under-pressure'
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { WebSocket } from 'ws'
import type { StreamSession } from '../src/calls/stream-session.js'
import { CloseCode } from '../src/vendors/protocol-error.js'

/** One vendor WebSocket and what keepalive needs to know about it. */
export interface Connection {
  socket: WebSocket
  session: StreamSession
  /** Messages received; the owner's message listener counts them. */
  messages: number
  /** The count the sweeper last saw, and when it last saw it change: idle is no change for IDLE_TIMEOUT_MS. */
  messagesSeen: number
  quietSince: number
  lastPingAt: number
  /** When the pong for the last ping is overdue; null when none is awaited. */
  pongDueAt: number | null
}

declare module 'fastify' {
  interface FastifyInstance {
    connections: {
      /**
       * Starts tracking a connection: keepalive, idle timeout, admission and drain all count it. The caller's own
       * message listener counts `messages`, so a message costs no second listener and no clock read.
       */
      track (socket: WebSocket, session: StreamSession): Connection
      readonly size: number
      /** onRequest hook for ingest routes: 503 with Retry-After while shutting down, full or under pressure. */
      admit (request: FastifyRequest, reply: FastifyReply): Promise<void>
      /** Refuses new connections and waits until the live ones end, or until the timeout. */
      drain (timeoutMs: number): Promise<void>
    }
  }
}

const RETRY_AFTER_SECONDS = 5

/**
 * The live vendor connections of this process: keepalive (ping, pong deadline), idle timeout, admission control
 * (MAX_CONCURRENT_CALLS and event-loop delay through @fastify/under-pressure), and the drain on shutdown.
 * Open connections are never touched by admission: it only refuses new upgrades.
 */
export default fp(async (fastify) => {
  const { WS_PING_INTERVAL_MS, WS_PONG_TIMEOUT_MS, IDLE_TIMEOUT_MS, MAX_CONCURRENT_CALLS, EVENT_LOOP_DELAY_LIMIT_MS } = fastify.config
  const live = new Set<Connection>()
  const emptied: Array<() => void> = []

  // under-pressure measures; every request passes its hook, and only ingest upgrades consult it, through admit.
  await fastify.register(underPressure, { maxEventLoopDelay: EVENT_LOOP_DELAY_LIMIT_MS, pressureHandler: () => undefined })

  function sweep (): void {
    const now = Date.now()
    for (const connection of live) {
      const { socket, session } = connection
      if (connection.pongDueAt !== null && now >= connection.pongDueAt) {
        session.end('keepalive_timeout')
        socket.terminate()
      } else if (connection.messages !== connection.messagesSeen) {
        connection.messagesSeen = connection.messages
        connection.quietSince = now
      } else if (now - connection.quietSince >= IDLE_TIMEOUT_MS) {
        session.end('idle')
        socket.close(CloseCode.NORMAL, 'idle')
      } else if (connection.pongDueAt === null && now - connection.lastPingAt >= WS_PING_INTERVAL_MS) {
        // One ping at a time: a new one must not push back the deadline of the one still unanswered.
        connection.lastPingAt = now
        connection.pongDueAt = now + WS_PONG_TIMEOUT_MS
        socket.ping()
      }
    }
  }
  const sweeper = setInterval(sweep, Math.max(10, Math.min(WS_PING_INTERVAL_MS, WS_PONG_TIMEOUT_MS, IDLE_TIMEOUT_MS) / 4))
  sweeper.unref()
  fastify.addHook('onClose', async () => clearInterval(sweeper))

  function refuse (reply: FastifyReply, reason: string, message: string): FastifyReply {
    fastify.metrics.upgradesRefused.inc({ reason })
    reply.log.warn({ reason }, 'upgrade refused: not admitted')
    return reply.code(503).header('retry-after', RETRY_AFTER_SECONDS).send({ statusCode: 503, error: 'Service Unavailable', message })
  }

  fastify.decorate('connections', {
    track (socket: WebSocket, session: StreamSession) {
      const now = Date.now()
      const connection: Connection = { socket, session, messages: 0, messagesSeen: 0, quietSince: now, lastPingAt: now, pongDueAt: null }
      live.add(connection)
      socket.on('pong', () => { connection.pongDueAt = null })
      socket.on('close', () => {
        live.delete(connection)
        if (live.size === 0) for (const resolve of emptied.splice(0)) resolve()
      })
      return connection
    },
    get size () {
      return live.size
    },
    async admit (_request: FastifyRequest, reply: FastifyReply) {
      if (fastify.shuttingDown) return refuse(reply, 'shutting_down', 'the gateway is shutting down; connect to another instance')
      if (live.size >= MAX_CONCURRENT_CALLS) return refuse(reply, 'max_calls', 'the gateway is at its call limit')
      if (fastify.isUnderPressure()) return refuse(reply, 'under_pressure', 'the gateway is overloaded')
    },
    async drain (timeoutMs: number) {
      fastify.shuttingDown = true
      if (live.size === 0) return
      fastify.log.info({ connections: live.size, timeout_ms: timeoutMs }, 'draining live calls')
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        new Promise<void>((resolve) => emptied.push(resolve)),
        new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs) })
      ])
      clearTimeout(timer)
      if (live.size > 0) fastify.log.warn({ connections: live.size }, 'drain timeout: closing the calls still live')
    }
  })
}, { name: 'connections', fastify: '5.x', dependencies: ['calls', 'metrics'], decorators: { fastify: ['config'] } })
