import type { FastifyPluginAsync } from 'fastify'

/** Prometheus scrape endpoint; like the probes, it needs no credentials (keep it off the public listener). */
const metricsRoutes: FastifyPluginAsync = async (fastify) => {
  const { metrics, publisher } = fastify
  fastify.get('/metrics', { logLevel: 'warn' }, async (_request, reply) => {
    metrics.redisConnected.set(publisher.connected ? 1 : 0)
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  })
}

export default metricsRoutes
