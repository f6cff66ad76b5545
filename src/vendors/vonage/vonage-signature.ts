import { createHmac, timingSafeEqual } from 'node:crypto'
import type { AuthMethod, AuthRequest } from '../../auth/auth-method.js'
import type { Tenancy } from '../../auth/tenancy.js'

export const VONAGE_SIGNATURE_METHOD = 'vonage-signature'

/** A token older than this is refused, so a captured upgrade cannot be replayed for long. */
const MAX_TOKEN_AGE_S = 300
/** Vonage's clock may run a little ahead of the gateway's. */
const CLOCK_TOLERANCE_S = 60

/**
 * With the NCCO websocket endpoint's `"authorization": {"type": "vonage"}`, Vonage sends the JWT of its signed
 * webhooks in `Authorization: Bearer` on the upgrade: HS256, signed with the account's signature secret, naming the
 * account in `api_key` (https://developer.vonage.com/en/getting-started/concepts/webhooks#decoding-signed-webhooks).
 * The secret belongs to one account, `apiKey`, which is then the call's tenant.
 */
export function createVonageSignatureMethod (signatureSecret: string, apiKey: string): AuthMethod {
  const tenancy: Tenancy = { kind: 'accounts', accounts: [apiKey] }
  return {
    name: VONAGE_SIGNATURE_METHOD,
    tenancy,
    applies: (request) => bearerToken(request) !== undefined,
    async verify (request) {
      const claims = verifiedClaims(bearerToken(request) ?? '', signatureSecret)
      if (claims === null) return { status: 401, reason: 'bad_signature', message: 'invalid token' }
      if (claims.api_key !== apiKey) {
        return { status: 401, reason: 'wrong_account', message: 'invalid token', detail: 'the token\'s api_key is not VONAGE_API_KEY' }
      }
      const now = Date.now() / 1000
      if (typeof claims.iat !== 'number' || claims.iat > now + CLOCK_TOLERANCE_S || claims.iat < now - MAX_TOKEN_AGE_S - CLOCK_TOLERANCE_S) {
        return { status: 401, reason: 'token_lifetime', message: 'invalid token', detail: `iat must be within the last ${MAX_TOKEN_AGE_S} s` }
      }
      if (typeof claims.exp === 'number' && claims.exp < now - CLOCK_TOLERANCE_S) return { status: 401, reason: 'token_expired', message: 'invalid token' }
      return { method: 'vendor', name: VONAGE_SIGNATURE_METHOD, ip: request.ip, tenancy }
    }
  }
}

/** A token as Vonage signs it with `signatureSecret`, carrying `claims` (for tests). */
export function signVonageToken (signatureSecret: string, claims: Record<string, unknown>): string {
  const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url')
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url')
  return `${header}.${payload}.${hs256(signatureSecret, `${header}.${payload}`).toString('base64url')}`
}

function hs256 (secret: string, signingInput: string): Buffer {
  return createHmac('sha256', secret).update(signingInput).digest()
}

/**
 * The claims of an HS256 token signed with `secret`, or null. The signature is recomputed with HS256 whatever the
 * header says, compared in constant time, and must be written exactly as base64url (Node's decoder skips strays).
 */
function verifiedClaims (token: string, secret: string): Record<string, unknown> | null {
  const parts = token.split('.')
  if (parts.length !== 3) return null
  const [header, payload, signature] = parts
  const given = Buffer.from(signature, 'base64url')
  const expected = hs256(secret, `${header}.${payload}`)
  if (given.toString('base64url') !== signature || given.length !== expected.length || !timingSafeEqual(given, expected)) return null
  const alg = parseObject(header)?.alg
  const claims = parseObject(payload)
  return alg === 'HS256' ? claims : null
}

function parseObject (part: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString())
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : null
  } catch {
    return null
  }
}

function bearerToken (request: AuthRequest): string | undefined {
  const header = request.headers.authorization
  if (typeof header !== 'string') return undefined
  const match = /^\s*bearer\s+(\S+)\s*$/i.exec(header)
  return match === null ? undefined : match[1]
}
