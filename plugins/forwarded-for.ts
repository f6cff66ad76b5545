import fp from 'fastify-plugin'
import { isCanonicalIp, parseCidrList } from '../src/auth/ip-allowlist.js'

/**
 * With TRUST_PROXY set, the client address is read from X-Forwarded-For, through the trusted proxies' hops. Every
 * address walked, the client's included, must be written canonically: ipaddr.js, under proxy-addr and the
 * allowlists, reads 012.1.2.3, 0xa.1.2.3 and 167837955 as 10.1.2.3, so such an entry could pass a list while the
 * log showed something else. A request carrying one is refused with 400 before any route sees it, an upgrade's too.
 * What lies beyond the first untrusted hop is never read, so it is not checked.
 */
export default fp(async (fastify) => {
  if (parseCidrList(fastify.config.TRUST_PROXY).length === 0) return
  fastify.addHook('onRequest', async (request, reply) => {
    const entry = request.ips?.find((address) => !isCanonicalIp(address))
    if (entry === undefined) return
    request.log.warn({ reason: 'forwarded_for_not_canonical', forwarded_for: entry.slice(0, 64), peer: request.socket.remoteAddress },
      'request refused: X-Forwarded-For holds an address that is not canonical')
    return reply.code(400).send({ statusCode: 400, error: 'Bad Request', message: 'X-Forwarded-For holds an address that is not a canonical IPv4 or IPv6 address' })
  })
  // After websocket's hooks: its onRequest marks an upgrade, so that the socket of a refused one is closed.
}, { name: 'forwarded-for', fastify: '5.x', dependencies: ['websocket'], decorators: { fastify: ['config'] } })
