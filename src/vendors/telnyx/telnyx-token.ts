import { timingSafeEqual } from 'node:crypto'
import type { AuthMethod } from '../../auth/auth-method.js'
import type { Tenancy } from '../../auth/tenancy.js'
import { TELNYX_TOKEN_HEADER } from './telnyx-messages.js'

export const TELNYX_TOKEN_METHOD = 'telnyx-token'

/** Whether `given` is the configured token, compared in constant time (the length aside). */
export function tokenMatches (expected: string, given: unknown): boolean {
  if (typeof given !== 'string') return false
  const a = Buffer.from(expected)
  const b = Buffer.from(given)
  return a.length === b.length && timingSafeEqual(a, b)
}

/**
 * Telnyx sends the stream_auth_token the stream was started with as the x-telnyx-streaming-auth-token header of its
 * upgrade (https://developers.telnyx.com/api-reference/websockets/stream-call-media-over-websocket). `userId`: the
 * account (user_id) the token belongs to; null: the start's user_id stands.
 */
export function createTelnyxTokenMethod (token: string, userId: string | null = null): AuthMethod {
  const tenancy: Tenancy = userId === null ? { kind: 'claimed' } : { kind: 'accounts', accounts: [userId] }
  return {
    name: TELNYX_TOKEN_METHOD,
    tenancy,
    applies: (request) => request.headers[TELNYX_TOKEN_HEADER] !== undefined,
    async verify (request) {
      if (tokenMatches(token, request.headers[TELNYX_TOKEN_HEADER])) return { method: 'vendor', name: TELNYX_TOKEN_METHOD, ip: request.ip, tenancy }
      return { status: 401, reason: 'bad_token', message: `invalid ${TELNYX_TOKEN_HEADER}` }
    }
  }
}
