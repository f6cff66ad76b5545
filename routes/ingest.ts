import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { authMethodName, credentialFields } from '../src/auth/principal.js'
import type { VendorAdapter } from '../src/vendors/vendor-adapter.js'
import type { Candidate } from '../src/vendors/vendor-detector.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The vendors this connection may be, with what each took from the upgrade; set before the upgrade. */
    candidates: Candidate[] | null
  }
}

/** The shared endpoint: any enabled vendor, told apart by its auth and its first messages. */
const SHARED_INGEST_PATH = '/v1/ingest'

/** Any query string: a parameter given twice is an array. Each vendor checks what it reads there. */
const IngestQuery = Type.Record(Type.String(), Type.Union([Type.String(), Type.Array(Type.String())]))

/** Vendor WebSockets: the shared /v1/ingest, and /v1/ingest/<vendor> for each enabled vendor. */
const ingestRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.decorateRequest('candidates', null)
  addIngestRoute(fastify, SHARED_INGEST_PATH, fastify.vendors)
  for (const adapter of fastify.vendors) addIngestRoute(fastify, `${SHARED_INGEST_PATH}/${adapter.name}`, [adapter])
}

export default ingestRoutes

type TypedInstance = Parameters<FastifyPluginAsyncTypebox>[0]

function addIngestRoute (fastify: TypedInstance, path: string, vendors: readonly VendorAdapter[]): void {
  const { liveCalls } = fastify
  // Every line about the upgrade, refusals included, names the route's vendor or candidates: `grep exotel` finds it.
  const named = vendors.length === 1 ? { vendor: vendors[0].name } : { vendor_candidates: vendors.map(({ name }) => name) }

  fastify.get(path, {
    websocket: true,
    childLoggerFactory: (logger, bindings, options) => logger.child({ ...bindings, ...named }, options),
    schema: { querystring: IngestQuery },
    // Admission first: a refused upgrade costs no credential check.
    onRequest: [fastify.admitCall, fastify.auth.authenticate([...new Set(vendors.flatMap((adapter) => adapter.auth))])],
    // The vendors the principal's method admits each check the upgrade; any refusal is a 400 before the upgrade.
    async preHandler (request, reply) {
      const principal = request.principal
      if (principal === null) throw new Error('onRequest authenticated no principal')
      const method = authMethodName(principal)
      const candidates: Candidate[] = []
      for (const adapter of vendors) {
        if (!adapter.auth.includes(method)) continue
        const context = adapter.accept({ query: request.query, principal })
        if ('error' in context) {
          // On the shared route, which of the candidates refused it.
          request.log.warn({ ...(vendors.length > 1 ? { vendor: adapter.name } : {}), reason: context.error }, 'upgrade refused: bad request')
          return reply.code(400).send({ statusCode: 400, error: 'Bad Request', message: context.error })
        }
        candidates.push({ adapter, context })
      }
      request.candidates = candidates
    }
  }, (socket, request) => {
    // Every line about the connection says which credential it came with (a Basic key, never a secret). The call
    // names its vendor itself once it knows it, so its logger starts from the request id, not the route's names.
    const log = fastify.log.child({ reqId: request.id, ...(request.principal === null ? {} : credentialFields(request.principal)) })
    // @fastify/websocket's error listener holds the request and its reply for as long as the socket lives; the
    // call's own listener (LiveCalls.open) answers socket errors, so the request can go once the call has it.
    socket.removeAllListeners('error')
    liveCalls.open(socket, { candidates: request.candidates ?? [], log })
  })
}
