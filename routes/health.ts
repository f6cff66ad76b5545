import { Type, type Static } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'

const NotReadyReasonSchema = Type.Union([
  Type.Literal('redis_disconnected'),
  Type.Literal('redis_stalled'),
  Type.Literal('playback_disconnected'),
  Type.Literal('redis_cluster_down'),
  Type.Literal('shutting_down')
])
type NotReadyReason = Static<typeof NotReadyReasonSchema>

const NotReady = Type.Object({ status: Type.Literal('not_ready'), reasons: Type.Array(NotReadyReasonSchema) })

/**
 * Kubernetes probes. Liveness checks nothing but the event loop; readiness checks the bus (publisher, stalls, playback
 * subscriber) and shutdown.
 */
const healthRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/health', {
    logLevel: 'warn',
    schema: { response: { 200: Type.Object({ status: Type.Literal('ok') }) } }
  }, async () => ({ status: 'ok' as const }))

  fastify.get('/ready', {
    logLevel: 'warn',
    schema: { response: { 200: Type.Object({ status: Type.Literal('ready') }), 503: NotReady } }
  }, async (_request, reply) => {
    const reasons: NotReadyReason[] = [...fastify.publisher.problems]
    if (!fastify.liveCalls.accepting) reasons.push('shutting_down')
    if (reasons.length > 0) return reply.code(503).send({ status: 'not_ready' as const, reasons })
    return { status: 'ready' as const }
  })
}

export default healthRoutes
