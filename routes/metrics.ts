import type { FastifyPluginAsync } from 'fastify'
import { createIpAllowlist, parseCidrList } from '../src/auth/ip-allowlist.js'

/**
 * Prometheus scrape endpoint. It shares the ingest port, which faces the internet, so only METRICS_ALLOWLIST
 * (loopback and private ranges by default) may read it; on the admin port too, which may be reachable more widely.
 */
const metricsRoutes: FastifyPluginAsync = async (fastify) => {
  const { metrics, publisher, config } = fastify
  const mayScrape = createIpAllowlist(parseCidrList(config.METRICS_ALLOWLIST))
  fastify.get('/metrics', {
    logLevel: 'warn',
    async onRequest (request, reply) {
      if (mayScrape(request.ip)) return
      request.log.warn({ ip: request.ip }, 'metrics scrape refused: address not in METRICS_ALLOWLIST')
      return reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: 'client address is not in METRICS_ALLOWLIST' })
    }
  }, async (_request, reply) => {
    metrics.redisConnected.set(publisher.connected ? 1 : 0)
    // With WORKERS > 1, the whole process group's metrics, which the primary sums (src/worker-link.ts).
    return reply.type(metrics.registry.contentType).send(await metrics.exposition())
  })
}

export default metricsRoutes
