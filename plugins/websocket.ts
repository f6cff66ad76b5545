import fastifyWebsocket from '@fastify/websocket'
import type { onRequestAsyncHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { redactUrl } from '../src/logger.js'
import { CloseCode } from '../src/vendors/protocol-error.js'

/**
 * @fastify/websocket with the message size cap from MAX_MESSAGE_BYTES, compression off (it costs CPU and memory per
 * connection for base64 audio that barely compresses), a 404 for an upgrade to any route that is not a WebSocket,
 * and a shutdown that ends every live call with reason "shutdown" and closes its socket with 1001.
 */
export default fp(async (fastify) => {
  const upgradeListenersBefore = new Set(fastify.server.listeners('upgrade'))
  await fastify.register(fastifyWebsocket, {
    options: { maxPayload: fastify.config.MAX_MESSAGE_BYTES, perMessageDeflate: false },
    errorHandler (error, socket, request) {
      // ws has already closed the socket with the fitting code (1002, 1007, 1009…); the call logs it.
      if ((error as { code?: string }).code?.startsWith('WS_ERR_') === true) return
      request.log.error({ err: error }, 'websocket handler failed')
      socket.close(CloseCode.INTERNAL_ERROR, 'internal error')
    },
    // What @fastify/websocket's own preClose does (close every client, remove its upgrade listener, close the ws
    // server), with each live call ended first, so it publishes its call.stop with reason shutdown.
    preClose (done) {
      fastify.liveCalls.shutdown()
      for (const listener of upgradeListenersAdded) fastify.server.removeListener('upgrade', listener as () => void)
      fastify.websocketServer.close(() => done())
    }
  })
  const upgradeListenersAdded = fastify.server.listeners('upgrade').filter((listener) => !upgradeListenersBefore.has(listener))

  // Every upgrade is routed; on a route without a WebSocket handler @fastify/websocket would complete it and then
  // close the socket, unauthenticated. Each such route refuses it first, before the upgrade.
  fastify.addHook('onRoute', (route) => {
    if (route.websocket === true || route.wsHandler !== undefined) return
    const hooks = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest]
    route.onRequest = [refuseUpgrade, ...hooks]
  })
}, { name: 'websocket', fastify: '5.x', dependencies: ['live-calls'], decorators: { fastify: ['config'] } })

const refuseUpgrade: onRequestAsyncHookHandler = async (request, reply) => {
  if (!request.ws) return
  request.log.warn({ url: redactUrl(request.url) }, 'upgrade refused: no WebSocket at this route')
  return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: 'no WebSocket at this route' })
}
