import fp from 'fastify-plugin'
import { createMetrics, type Metrics } from '../src/metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics
  }
}

/** Decorates the instance with its Prometheus metrics, in a registry of its own. */
export default fp(async (fastify) => {
  fastify.decorate('metrics', createMetrics({ tenantLabel: fastify.config.METRICS_TENANT_LABEL }))
}, { name: 'metrics', fastify: '5.x', decorators: { fastify: ['config'] } })
