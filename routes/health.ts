import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'

const NotReady = Type.Object({
  status: Type.Literal('not_ready'),
  reasons: Type.Array(Type.Union([Type.Literal('redis_disconnected'), Type.Literal('shutting_down')]))
})

/** Kubernetes probes. Liveness checks nothing but the event loop; readiness checks Redis and shutdown. */
const healthRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/health', {
    logLevel: 'warn',
    schema: { response: { 200: Type.Object({ status: Type.Literal('ok') }) } }
  }, async () => ({ status: 'ok' as const }))

  fastify.get('/ready', {
    logLevel: 'warn',
    schema: { response: { 200: Type.Object({ status: Type.Literal('ready') }), 503: NotReady } }
  }, async (_request, reply) => {
    const reasons: Array<'redis_disconnected' | 'shutting_down'> = []
    if (!fastify.publisher.connected) reasons.push('redis_disconnected')
    if (!fastify.liveCalls.accepting) reasons.push('shutting_down')
    if (reasons.length > 0) return reply.code(503).send({ status: 'not_ready' as const, reasons })
    return { status: 'ready' as const }
  })
}

export default healthRoutes
