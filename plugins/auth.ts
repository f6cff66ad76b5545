import fastifyBasicAuth from '@fastify/basic-auth'
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { matchCredential, parseCredentials } from '../src/auth/basic-credentials.js'
import { createIpAllowlist, parseCidrList } from '../src/auth/ip-allowlist.js'

export type Principal =
  | { method: 'basic', key: string }
  | { method: 'ip', ip: string }

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook for ingest routes: decides before the upgrade, so a rejected client never gets a socket. */
    authenticate: onRequestAsyncHookHandler
  }
  interface FastifyRequest {
    principal: Principal | null
  }
}

const REALM = 'rtaa-ingest'

/**
 * Chooses the method from the Authorization header:
 * - Basic: the key:token must match one of BASIC_AUTH_CREDENTIALS (constant time), else 401;
 * - Bearer: JWT, not enabled yet, so 401;
 * - none: the client IP (socket peer, or the X-Forwarded-For hop chosen per TRUST_PROXY) must be in
 *   AUTH_IP_ALLOWLIST, else 403.
 * Rejections are logged with the method, reason and IP, never with what the client sent.
 */
export default fp(async (fastify) => {
  const { AUTH_IP_ALLOWLIST, BASIC_AUTH_CREDENTIALS } = fastify.config
  const isAllowedIp = createIpAllowlist(parseCidrList(AUTH_IP_ALLOWLIST))
  const credentials = parseCredentials(BASIC_AUTH_CREDENTIALS)

  fastify.decorateRequest('principal', null)
  await fastify.register(fastifyBasicAuth, {
    async validate (key, token, request) {
      const matched = matchCredential(credentials, key, token)
      if (matched === null) throw new Error('credentials do not match')
      request.principal = { method: 'basic', key: matched }
    }
  })

  function checkBasic (request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    return new Promise((resolve) => {
      fastify.basicAuth(request, reply, (err) => resolve(err === undefined || err === null))
    })
  }

  fastify.decorate('authenticate', async function authenticate (request: FastifyRequest, reply: FastifyReply) {
    const header = request.headers.authorization
    if (header === undefined) {
      if (isAllowedIp(request.ip)) {
        request.principal = { method: 'ip', ip: request.ip }
        return
      }
      return deny(request, reply, 403, 'ip', 'ip_not_allowed', 'client address is not in the allowlist')
    }
    const scheme = header.trimStart().split(/\s/, 1)[0].toLowerCase()
    if (scheme === 'basic') {
      if (credentials.length === 0) return deny(request, reply, 401, 'basic', 'basic_disabled', 'basic auth is not enabled')
      if (await checkBasic(request, reply)) return
      return deny(request, reply, 401, 'basic', 'bad_credentials', 'invalid credentials')
    }
    if (scheme === 'bearer') return deny(request, reply, 401, 'jwt', 'jwt_disabled', 'bearer tokens are not enabled')
    return deny(request, reply, 401, 'unknown', 'unsupported_scheme', 'unsupported authorization scheme')
  })
}, { name: 'auth', fastify: '5.x', decorators: { fastify: ['config'] } })

function deny (request: FastifyRequest, reply: FastifyReply, status: 401 | 403, method: string, reason: string, message: string): FastifyReply {
  request.log.warn({ auth_method: method, reason, ip: request.ip, status }, 'authentication failed')
  if (status === 401) reply.header('www-authenticate', `Basic realm="${REALM}"`)
  return reply.code(status).send({ statusCode: status, error: status === 401 ? 'Unauthorized' : 'Forbidden', message })
}
