import cluster from 'node:cluster'
import fp from 'fastify-plugin'
import { DashboardHub } from '../src/dashboard/dashboard-hub.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The live call dashboard's view of this process's calls (and, with WORKERS > 1, of the group's). */
    dashboard: DashboardHub
  }
}

/**
 * Decorates the instance with the dashboard's hub, which follows liveCalls' start and end events and watches calls
 * only while someone looks; its process panel reads the publisher, under-pressure's event-loop delay and the drain.
 */
export default fp(async (fastify) => {
  const { config, liveCalls, publisher } = fastify
  const dashboard = new DashboardHub({
    liveCalls,
    listen: config.DASHBOARD_LISTEN,
    log: fastify.log,
    process: () => {
      const { eventLoopDelay, rssBytes } = fastify.memoryUsage()
      return {
        pid: process.pid,
        worker: cluster.isWorker ? (cluster.worker?.id ?? null) : null,
        connections: liveCalls.size,
        max_calls: config.MAX_CONCURRENT_CALLS,
        accepting: liveCalls.accepting,
        redis: { connected: publisher.connected, buffer_bytes: publisher.waitingBytes, buffer_max_bytes: config.REDIS_BUFFER_MAX_BYTES },
        event_loop_delay_ms: Math.round(eventLoopDelay * 10) / 10,
        rss_bytes: rssBytes
      }
    }
  })
  fastify.decorate('dashboard', dashboard)
  fastify.addHook('onClose', async () => dashboard.close())
}, { name: 'dashboard', fastify: '5.x', dependencies: ['live-calls', 'publisher', '@fastify/under-pressure'], decorators: { fastify: ['config', 'memoryUsage'] } })
