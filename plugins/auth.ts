import { createPublicKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import fastifyBasicAuth from '@fastify/basic-auth'
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { basicCredentials, matchCredential, parseCredentials } from '../src/auth/basic-credentials.js'
import { beyondLoopback, createIpAllowlist, isAddressHost, parseCidrList } from '../src/auth/ip-allowlist.js'
import type { AuthFailure, AuthMethod, AuthRequest } from '../src/auth/auth-method.js'
import type { Principal } from '../src/auth/principal.js'
import { isTenantId, parseBasicAccounts, type Tenancy } from '../src/auth/tenancy.js'
import { ConfigError, type CoreConfig } from '../src/core-config.js'
import type { Viewer } from '../src/dashboard/dashboard-view.js'

declare module 'fastify' {
  interface FastifyInstance {
    auth: {
      /**
       * An onRequest hook that decides before the upgrade, so a rejected client never gets a socket. `accepted`
       * names the methods the route takes.
       */
      authenticate (accepted: readonly string[]): onRequestAsyncHookHandler
      /**
       * An onRequest hook for the dashboard's routes: a gateway JWT (its tenant_id's calls only), an operator's
       * DASHBOARD_BASIC_CREDENTIALS, or no credential from DASHBOARD_ALLOWLIST (every tenant's calls).
       */
      authenticateViewer: onRequestAsyncHookHandler
    }
  }
  interface FastifyRequest {
    principal: Principal | null
    /** Who opened a dashboard route, once authenticateViewer has admitted them. */
    viewer: Viewer | null
  }
}

const REALM = 'rtaa-ingest'
/** The `scope` a JWT needs to open the dashboard. */
export const DASHBOARD_SCOPE = 'dashboard'
const BASIC_CHALLENGE = `Basic realm="${REALM}"`
const BEARER_CHALLENGE = `Bearer realm="${REALM}"`

/** An issuer's clock may run a little ahead: a token minted for exactly JWT_MAX_AGE_S still passes. */
const JWT_CLOCK_TOLERANCE_S = 60

/**
 * The methods, in the order they are tried: the first the route accepts whose credential the request carries decides
 * (else the first whose credential it carries, to say that the route does not take it).
 * - jwt: `Authorization: Bearer` or `?access_token=`, verified with @fastify/jwt (exp, at most JWT_MAX_AGE_S ahead,
 *   and tenant_id required);
 * - basic: `Authorization: Basic`, matched against BASIC_AUTH_CREDENTIALS in constant time;
 * - the methods the enabled vendors bring (a request signature, say);
 * - ip: no credential at all; the client IP (after TRUST_PROXY) must be in AUTH_IP_ALLOWLIST, else 403.
 * Rejections are logged with the method, reason and IP, never with what the client sent.
 */
export default fp(async (fastify) => {
  const { config } = fastify
  const allowlist = parseCidrList(config.AUTH_IP_ALLOWLIST)
  const isAllowedIp = createIpAllowlist(allowlist)
  const credentials = parseCredentials(config.BASIC_AUTH_CREDENTIALS)
  const accountsOfKey = parseBasicAccounts(config.BASIC_AUTH_ACCOUNTS, credentials.map(({ key }) => key))
  const vendorAuthMethods = fastify.vendors.flatMap((adapter) => adapter.authMethods ?? [])
  warnOfUnverifiedTenants(fastify, allowlist, accountsOfKey, vendorAuthMethods)
  const viewerAllowlist = parseCidrList(config.DASHBOARD_ALLOWLIST)
  const mayView = createIpAllowlist(viewerAllowlist)
  if (config.DASHBOARD_ENABLED && beyondLoopback(viewerAllowlist).length > 0) {
    fastify.log.warn({ ranges: beyondLoopback(viewerAllowlist), listen: config.DASHBOARD_LISTEN },
      'DASHBOARD_ALLOWLIST admits addresses beyond loopback: anyone there sees every tenant\'s calls without a credential')
  }
  const viewerCredentials = parseCredentials(config.DASHBOARD_BASIC_CREDENTIALS)
  fastify.decorateRequest('principal', null)
  fastify.decorateRequest('viewer', null)

  await fastify.register(fastifyBasicAuth, {
    async validate (key, token, request) {
      const matched = matchCredential(credentials, key, token)
      if (matched === null) throw new Error('credentials do not match')
      const tenancy = accountsOfKey.get(matched)
      // parseBasicAccounts gives every key an entry; were one missing, the key would admit no one.
      if (tenancy === undefined) throw new Error('credentials do not match')
      request.principal = { method: 'basic', key: matched, tenancy }
    }
  })
  const jwtEnabled = await registerJwt(fastify, config)

  const jwt: Method = {
    name: 'jwt',
    applies: (request) => bearerToken(request) !== undefined,
    async verify (request) {
      if (!jwtEnabled) return { status: 401, reason: 'jwt_disabled', message: 'bearer tokens are not enabled' }
      try {
        const claims = await request.jwtVerify<{ tenant_id?: unknown, sub?: unknown, exp?: unknown, scope?: unknown }>()
        // fast-jwt's maxAge counts from iat, which the issuer picks; the cap is on how long the token has left.
        if (typeof claims.exp !== 'number' || claims.exp - Date.now() / 1000 > config.JWT_MAX_AGE_S + JWT_CLOCK_TOLERANCE_S) {
          return { status: 401, reason: 'token_lifetime', message: 'invalid token', detail: `the exp claim lies more than JWT_MAX_AGE_S (${config.JWT_MAX_AGE_S} s) ahead` }
        }
        if (typeof claims.tenant_id !== 'string' || claims.tenant_id === '') {
          return { status: 401, reason: 'missing_tenant', message: 'the token has no tenant_id claim' }
        }
        // The tenant becomes part of Redis names, so it is held to what they can carry.
        if (!isTenantId(claims.tenant_id)) {
          return { status: 401, reason: 'invalid_tenant', message: 'invalid token', detail: 'tenant_id must be 1-128 letters, digits and . _ @ + -, starting with a letter or digit' }
        }
        const scopes = typeof claims.scope === 'string' ? claims.scope.split(' ').filter((scope) => scope !== '') : []
        return { method: 'jwt', tenantId: claims.tenant_id, subject: typeof claims.sub === 'string' ? claims.sub : null, scopes }
      } catch (err) {
        const { code, message } = err as { code?: string, message: string }
        return { status: 401, reason: JWT_FAILURES[code ?? ''] ?? 'token_invalid', message: 'invalid token', detail: message }
      }
    }
  }
  const basic: Method = {
    name: 'basic',
    applies: (request) => scheme(request) === 'basic',
    async verify (request, reply) {
      if (credentials.length === 0) return { status: 401, reason: 'basic_disabled', message: 'basic auth is not enabled' }
      const matched = await new Promise<boolean>((resolve) => {
        fastify.basicAuth(request, reply, (err) => resolve(err === undefined || err === null))
      })
      if (!matched || request.principal === null) return { status: 401, reason: 'bad_credentials', message: 'invalid credentials' }
      return request.principal
    }
  }

  const ip: Method = {
    name: 'ip',
    applies: () => true,
    async verify (request) {
      if (isAllowedIp(request.ip)) return { method: 'ip', ip: request.ip }
      return { status: 403, reason: 'ip_not_allowed', message: 'client address is not in the allowlist' }
    }
  }
  const vendorMethods: Method[] = vendorAuthMethods.map((method) => ({
    name: method.name,
    applies: method.applies,
    verify: (_request, _reply, auth) => method.verify(auth)
  }))
  // Tried in this order; ip comes last, as the method of a request that carries no credential.
  const methods: Method[] = [jwt, basic, ...vendorMethods, ip]

  fastify.decorate('auth', {
    authenticate (accepted: readonly string[]): onRequestAsyncHookHandler {
      return async function authenticate (request, reply) {
        const auth = toAuthRequest(request)
        // The route's own methods first: on Vonage's route its signed Bearer token is Vonage's, not the gateway's JWT.
        const method = methods.find((candidate) => candidate !== ip && accepted.includes(candidate.name) && candidate.applies(auth)) ??
          methods.find((candidate) => candidate.applies(auth)) ?? ip
        if (method === ip && request.headers.authorization !== undefined) {
          return deny(request, reply, 'unknown', { status: 401, reason: 'unsupported_scheme', message: 'unsupported authorization scheme' }, challenges(accepted))
        }
        if (!accepted.includes(method.name)) {
          return deny(request, reply, method.name, method === ip
            ? { status: 401, reason: 'credentials_required', message: `credentials required: ${accepted.join(' or ')}` }
            : { status: 401, reason: 'method_not_accepted', message: `${method.name} is not accepted here; use ${accepted.join(' or ')}` }, challenges(accepted))
        }
        const outcome = await method.verify(request, reply, auth)
        if ('status' in outcome) {
          // The credential sent failed: the challenge names its scheme (RFC 6750's invalid_token for a Bearer token).
          return deny(request, reply, method.name, outcome, method === jwt ? [`${BEARER_CHALLENGE}, error="invalid_token"`] : challenges([method.name]))
        }
        request.principal = outcome
      }
    },

    async authenticateViewer (request, reply) {
      const auth = toAuthRequest(request)
      if (jwt.applies(auth)) {
        const outcome = await jwt.verify(request, reply, auth)
        if ('status' in outcome) return deny(request, reply, 'jwt', outcome, [`${BEARER_CHALLENGE}, error="invalid_token"`])
        // A token minted for streaming (a native client's, a vendor's URL) does not open the calls' audio.
        if (outcome.method !== 'jwt' || !outcome.scopes.includes(DASHBOARD_SCOPE)) {
          return deny(request, reply, 'jwt', { status: 403, reason: 'scope_missing', message: `the token's scope claim does not include ${DASHBOARD_SCOPE}` }, [])
        }
        request.viewer = { who: `jwt:${outcome.subject ?? '-'}@${outcome.tenantId}`, tenant: outcome.tenantId }
        return
      }
      if (scheme(auth) === 'basic') {
        const sent = basicCredentials(request.headers.authorization)
        const operator = sent === null || viewerCredentials.length === 0 ? null : matchCredential(viewerCredentials, sent.key, sent.token)
        if (operator === null) {
          const failure: AuthFailure = viewerCredentials.length === 0
            ? { status: 401, reason: 'basic_disabled', message: 'basic auth is not enabled for the dashboard' }
            : { status: 401, reason: 'bad_credentials', message: 'invalid credentials' }
          return deny(request, reply, 'basic', failure, [BASIC_CHALLENGE])
        }
        request.viewer = { who: `basic:${operator}`, tenant: null }
        return
      }
      if (request.headers.authorization !== undefined) {
        return deny(request, reply, 'unknown', { status: 401, reason: 'unsupported_scheme', message: 'unsupported authorization scheme' }, [BASIC_CHALLENGE, ...(jwtEnabled ? [BEARER_CHALLENGE] : [])])
      }
      if (mayView(request.ip)) {
        // Without a credential, only a page opened by address: a name may be rebound to this address by anyone.
        if (!isAddressHost(request.hostname)) {
          return deny(request, reply, 'ip', { status: 403, reason: 'host_not_address', message: 'open the dashboard by address (http://127.0.0.1:…), or with credentials' }, [])
        }
        request.viewer = { who: `ip:${request.ip}`, tenant: null }
        return
      }
      // With operators' credentials set, a browser is asked for them (it prompts); a JWT's holder knows to send it.
      if (viewerCredentials.length > 0) {
        return deny(request, reply, 'ip', { status: 401, reason: 'credentials_required', message: 'credentials required: the client address is not in DASHBOARD_ALLOWLIST' }, [BASIC_CHALLENGE])
      }
      return deny(request, reply, 'ip', { status: 403, reason: 'ip_not_allowed', message: 'client address is not in DASHBOARD_ALLOWLIST' }, [])
    }
  })
}, { name: 'auth', fastify: '5.x', dependencies: ['metrics', 'vendors'], decorators: { fastify: ['config'] } })

/**
 * Credentials whose calls take whatever account the start names, as unverified tenants: Basic keys bound to `*`,
 * vendor methods without their account (a signature covers only the URL, so a replayed upgrade names any), and the
 * IP allowlist beyond loopback, since a vendor's egress ranges serve all its customers, for vendors without a list.
 */
function warnOfUnverifiedTenants (fastify: FastifyInstance, allowlist: string[], accountsOfKey: ReadonlyMap<string, Tenancy>,
  vendorAuthMethods: readonly AuthMethod[]): void {
  const basicKeys = [...accountsOfKey].filter(([, tenancy]) => tenancy.kind === 'claimed').map(([key]) => key)
  const methods = vendorAuthMethods.filter(({ tenancy }) => tenancy.kind === 'claimed').map(({ name }) => name)
  const ranges = beyondLoopback(allowlist)
  const open = ranges.length === 0 ? [] : fastify.vendors.filter((adapter) => adapter.auth.includes('ip') && (adapter.ipAccounts ?? null) === null)
  if (basicKeys.length > 0) fastify.log.warn({ keys: basicKeys }, 'BASIC_AUTH_ACCOUNTS binds these keys to *: their streams name their own account, unverified')
  if (methods.length > 0) fastify.log.warn({ methods }, 'these auth methods vouch for no account: their streams name their own, unverified; set the vendor\'s account')
  if (open.length > 0) {
    fastify.log.warn({ ranges, vendors: open.map(({ name }) => name), variables: open.map(({ name }) => `${name.toUpperCase()}_ACCOUNT_SIDS`) },
      'AUTH_IP_ALLOWLIST admits addresses beyond loopback, and these vendors take whatever account a stream names: set their account lists')
  }
}

/** An auth method as the plugin runs it: built-in ones need the Fastify request, vendor ones get AuthRequest. */
interface Method {
  name: string
  applies (request: AuthRequest): boolean
  verify (request: FastifyRequest, reply: FastifyReply, auth: AuthRequest): Promise<Principal | AuthFailure>
}

/** Log reasons for @fastify/jwt's and fast-jwt's error codes; the rest are token_invalid, with fast-jwt's detail. */
const JWT_FAILURES: Record<string, string> = {
  FST_JWT_AUTHORIZATION_TOKEN_EXPIRED: 'token_expired',
  FAST_JWT_INACTIVE: 'token_inactive',
  FAST_JWT_MISSING_SIGNATURE: 'token_unsigned',
  FAST_JWT_INVALID_ALGORITHM: 'token_algorithm_refused'
}

/** Registers @fastify/jwt for HS256 (JWT_SECRET) or RS256/ES256 (JWT_PUBLIC_KEY_FILE); false when neither is set. */
async function registerJwt (fastify: FastifyInstance, config: CoreConfig): Promise<boolean> {
  const key = config.JWT_SECRET ?? readPublicKey(config.JWT_PUBLIC_KEY_FILE)
  if (key === undefined) return false
  // Loaded only where JWT is configured: @fastify/jwt and fast-jwt hold 1.5 MB of heap.
  const { default: fastifyJwt } = await import('@fastify/jwt')
  await fastify.register(fastifyJwt, {
    secret: typeof key === 'string' ? key : { public: key.pem },
    verify: {
      // Only the configured algorithm: `alg: none` and any other algorithm are refused.
      algorithms: [typeof key === 'string' ? 'HS256' : key.algorithm],
      // fast-jwt checks iss and aud only when present, so a configured issuer or audience must also be required.
      requiredClaims: ['exp', 'tenant_id', ...(config.JWT_ISSUER === undefined ? [] : ['iss']), ...(config.JWT_AUDIENCE === undefined ? [] : ['aud'])],
      ...(config.JWT_ISSUER === undefined ? {} : { allowedIss: config.JWT_ISSUER }),
      ...(config.JWT_AUDIENCE === undefined ? {} : { allowedAud: config.JWT_AUDIENCE }),
      extractToken: (request: FastifyRequest) => bearerToken(toAuthRequest(request))
    },
    // Keep fast-jwt's reason (a missing claim, a bad signature…) for the log line; it never quotes the token.
    messages: { authorizationTokenInvalid: (err: Error) => err.message }
  })
  return true
}

function readPublicKey (path: string | undefined): { pem: string, algorithm: 'RS256' | 'ES256' } | undefined {
  if (path === undefined) return undefined
  let pem: string
  try {
    pem = readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigError(`invalid configuration: env/JWT_PUBLIC_KEY_FILE cannot be read: ${(err as Error).message}`)
  }
  let key
  try {
    key = createPublicKey(pem)
  } catch {
    throw new ConfigError('invalid configuration: env/JWT_PUBLIC_KEY_FILE is not a PEM public key')
  }
  if (key.asymmetricKeyType === 'rsa') return { pem, algorithm: 'RS256' }
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return { pem, algorithm: 'ES256' }
  throw new ConfigError('invalid configuration: env/JWT_PUBLIC_KEY_FILE must hold an RSA key (RS256) or a P-256 EC key (ES256)')
}

function toAuthRequest (request: FastifyRequest): AuthRequest {
  const scheme = request.protocol === 'https' ? 'wss' : 'ws'
  return {
    headers: request.headers,
    // Fastify's parser gives strings, and arrays for a parameter given twice; the routes' schemas say no more.
    query: request.query as AuthRequest['query'],
    ip: request.ip,
    url: `${scheme}://${request.host}${request.url}`
  }
}

function scheme (request: AuthRequest): string | undefined {
  const header = request.headers.authorization
  return typeof header === 'string' ? header.trimStart().split(/\s/, 1)[0].toLowerCase() : undefined
}

/** The token of `Authorization: Bearer …`, else of `?access_token=` for clients that cannot set headers. */
function bearerToken (request: AuthRequest): string | undefined {
  const header = request.headers.authorization
  if (typeof header === 'string') return scheme(request) === 'bearer' ? header.trim().slice('bearer'.length).trim() : undefined
  const token = request.query.access_token
  return typeof token === 'string' && token !== '' ? token : undefined
}

/** RFC 7235: a 401 names the schemes the client may answer with, here those of these methods. */
function challenges (methods: readonly string[]): string[] {
  const schemes = methods.flatMap((name) => name === 'jwt' ? [BEARER_CHALLENGE] : name === 'basic' ? [BASIC_CHALLENGE] : [])
  // A signature and the allowlist have no scheme of their own; Basic is the one a vendor's client knows.
  return schemes.length > 0 ? schemes : [BASIC_CHALLENGE]
}

function deny (request: FastifyRequest, reply: FastifyReply, method: string, failure: AuthFailure, challenge: string[]): FastifyReply {
  request.server.metrics.authFailures.inc({ method, reason: failure.reason })
  request.log.warn({ auth_method: method, reason: failure.reason, detail: failure.detail, ip: request.ip, status: failure.status }, 'authentication failed')
  if (failure.status === 401) reply.header('www-authenticate', challenge)
  return reply.code(failure.status).send({ statusCode: failure.status, error: failure.status === 401 ? 'Unauthorized' : 'Forbidden', message: failure.message })
}
