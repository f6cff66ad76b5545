import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { debugEnabled } from '../src/logger.js'
import { StreamSession } from '../src/calls/stream-session.js'
import { decodeExotelMessage } from '../src/vendors/exotel/exotel-decoder.js'
import { CloseCode, ProtocolError } from '../src/vendors/protocol-error.js'

const EXOTEL_SAMPLE_RATES = [8000, 16000, 24000]

declare module 'fastify' {
  interface FastifyRequest {
    sampleRate: number
  }
}

const IngestQuery = Type.Object({
  'sample-rate': Type.Optional(Type.String({ description: 'PCM rate of the stream: 8000, 16000 or 24000' })),
  sample_rate: Type.Optional(Type.String({ description: 'Alias of sample-rate, as some Exotel examples spell it' }))
})

/** Exotel Stream (one-way) and Voicebot (two-way) applets: `wss://host/v1/ingest?sample-rate=16000`. */
const exotelRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { publisher, calls, config } = fastify
  fastify.decorateRequest('sampleRate', 0)

  fastify.get('/v1/ingest', {
    websocket: true,
    schema: { querystring: IngestQuery },
    onRequest: fastify.authenticate,
    async preValidation (request, reply) {
      const raw = request.query['sample-rate'] ?? request.query.sample_rate
      const rate = raw === undefined ? config.EXOTEL_DEFAULT_SAMPLE_RATE : Number(raw)
      if (!EXOTEL_SAMPLE_RATES.includes(rate)) {
        request.log.warn({ sample_rate: raw }, 'upgrade refused: unsupported sample rate')
        return reply.code(400).send({
          statusCode: 400,
          error: 'Bad Request',
          message: `sample-rate must be one of ${EXOTEL_SAMPLE_RATES.join(', ')}; got "${raw}"`
        })
      }
      request.sampleRate = rate
    }
  }, (socket, request) => {
    const session = new StreamSession({
      vendor: 'exotel',
      sampleRate: request.sampleRate,
      publisher,
      registry: calls,
      transport: { close: (code, reason) => socket.close(code, reason) },
      log: request.log
    })

    // Listeners are attached synchronously so no message can arrive before them.
    socket.on('message', (data, isBinary) => {
      try {
        if (isBinary) throw new ProtocolError(CloseCode.UNSUPPORTED_DATA, 'binary frames are not part of the Exotel protocol')
        const decoded = decodeExotelMessage(data.toString(), debugEnabled(session.log))
        if (decoded.unknownFields !== undefined && decoded.unknownFields.length > 0) {
          session.log.debug({ fields: decoded.unknownFields }, 'unknown fields, ignored')
        }
        session.handle(decoded.event)
      } catch (err) {
        if (err instanceof ProtocolError) return session.reject(err)
        session.log.error({ err }, 'message handling failed')
        session.reject(new ProtocolError(CloseCode.INTERNAL_ERROR, 'internal error'))
      }
    })
    // ws has already started closing with the fitting code; the session logs the call and the reason.
    socket.on('error', (err: Error & { code?: string }) => session.reject(new ProtocolError(wsErrorCloseCode(err.code), err.message)))
    socket.on('close', (code) => session.closed(code))
  })
}

/** The close code ws sends for each of its own errors (ws/lib/receiver.js). */
function wsErrorCloseCode (code: string | undefined): number {
  if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return CloseCode.MESSAGE_TOO_BIG
  if (code === 'WS_ERR_INVALID_UTF8') return CloseCode.INVALID_PAYLOAD
  return CloseCode.PROTOCOL_ERROR
}

export default exotelRoutes
