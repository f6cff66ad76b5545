import fastifyWebsocket from '@fastify/websocket'
import fp from 'fastify-plugin'
import { CloseCode } from '../src/vendors/protocol-error.js'

/**
 * @fastify/websocket with the message size cap from MAX_MESSAGE_BYTES, compression off (it costs CPU and memory per
 * connection for base64 audio that barely compresses), and a shutdown that ends every live call with reason
 * "shutdown" before its socket is closed with 1001.
 */
export default fp(async (fastify) => {
  await fastify.register(fastifyWebsocket, {
    options: { maxPayload: fastify.config.MAX_MESSAGE_BYTES, perMessageDeflate: false },
    errorHandler (error, socket, request) {
      // ws has already closed the socket with the fitting code (1002, 1007, 1009…); the route logs it per call.
      if ((error as { code?: string }).code?.startsWith('WS_ERR_') === true) return
      request.log.error({ err: error }, 'websocket handler failed')
      socket.close(CloseCode.INTERNAL_ERROR, 'internal error')
    },
    preClose (done) {
      for (const call of fastify.calls.values()) call.hangup('shutdown', CloseCode.GOING_AWAY, 'server shutting down')
      for (const client of fastify.websocketServer.clients) client.close(CloseCode.GOING_AWAY, 'server shutting down')
      fastify.websocketServer.close(() => done())
    }
  })
}, { name: 'websocket', fastify: '5.x', dependencies: ['calls'], decorators: { fastify: ['config'] } })
