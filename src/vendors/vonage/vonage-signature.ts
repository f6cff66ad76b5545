import { createRequire } from 'node:module'
import type * as FastJwt from 'fast-jwt'
import type { AuthFailure, AuthMethod, AuthRequest } from '../../auth/auth-method.js'
import type { Tenancy } from '../../auth/tenancy.js'

export const VONAGE_SIGNATURE_METHOD = 'vonage-signature'

/** fast-jwt (1.4 MB of heap) is loaded once Vonage is enabled, not by every gateway that imports the vendor list. */
let fastJwt: typeof FastJwt | null = null
const loadFastJwt = (): typeof FastJwt => (fastJwt ??= createRequire(import.meta.url)('fast-jwt') as typeof FastJwt)

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
  const { createVerifier, createDecoder } = loadFastJwt()
  const decodeUnverified = createDecoder()
  const verifyToken = createVerifier({
    key: signatureSecret,
    algorithms: ['HS256'],
    requiredClaims: ['iat'],
    maxAge: MAX_TOKEN_AGE_S * 1000,
    clockTolerance: CLOCK_TOLERANCE_S * 1000
  })
  return {
    name: VONAGE_SIGNATURE_METHOD,
    tenancy,
    applies: (request) => bearerToken(request) !== undefined,
    async verify (request) {
      const token = bearerToken(request) ?? ''
      let claims: Record<string, unknown>
      try {
        claims = verifyToken(token) as Record<string, unknown>
      } catch (err) {
        return refusal(err, token, decodeUnverified)
      }
      // fast-jwt counts maxAge from iat but takes an iat in the future: that would stretch a token's life.
      if ((claims.iat as number) > Date.now() / 1000 + CLOCK_TOLERANCE_S) return { status: 401, reason: 'token_inactive', message: 'invalid token', detail: 'iat is in the future' }
      if (claims.api_key !== apiKey) {
        return { status: 401, reason: 'wrong_account', message: 'invalid token', detail: 'the token\'s api_key is not VONAGE_API_KEY' }
      }
      return { method: 'vendor', name: VONAGE_SIGNATURE_METHOD, ip: request.ip, tenancy }
    }
  }
}

/** Why fast-jwt refused a token, in the auth log's reasons: a lifetime past MAX_TOKEN_AGE_S tells apart from an expiry. */
function refusal (err: unknown, token: string, decodeUnverified: (token: string) => unknown): AuthFailure {
  const { TokenError } = loadFastJwt()
  const code = err instanceof TokenError ? err.code : null
  if (code === TokenError.codes.inactive) return { status: 401, reason: 'token_inactive', message: 'invalid token' }
  if (code === TokenError.codes.missingRequiredClaim) return { status: 401, reason: 'token_lifetime', message: 'invalid token', detail: 'no iat' }
  if (code !== TokenError.codes.expired) return { status: 401, reason: 'bad_signature', message: 'invalid token' }
  // Signed well, but too old: issued longer than MAX_TOKEN_AGE_S ago, or past its own exp.
  const { iat } = decodeUnverified(token) as { iat: number }
  return Date.now() / 1000 - iat > MAX_TOKEN_AGE_S + CLOCK_TOLERANCE_S
    ? { status: 401, reason: 'token_lifetime', message: 'invalid token', detail: `iat must be within the last ${MAX_TOKEN_AGE_S} s` }
    : { status: 401, reason: 'token_expired', message: 'invalid token' }
}

function bearerToken (request: AuthRequest): string | undefined {
  const header = request.headers.authorization
  if (typeof header !== 'string') return undefined
  const match = /^\s*bearer\s+(\S+)\s*$/i.exec(header)
  return match === null ? undefined : match[1]
}
