import { createHmac, timingSafeEqual } from 'node:crypto'
import type { AuthMethod } from '../../auth/auth-method.js'
import type { Tenancy } from '../../auth/tenancy.js'

export const TWILIO_SIGNATURE_METHOD = 'twilio-signature'

/**
 * Twilio signs each request it makes with X-Twilio-Signature: base64(HMAC-SHA1(auth token, URL)). A WebSocket
 * upgrade is a GET with no body, so the URL alone is signed, exactly as configured in <Stream url="wss://…">.
 */
export function twilioSignature (authToken: string, url: string): string {
  return createHmac('sha1', authToken).update(url).digest('base64')
}

/**
 * The URLs Twilio may have signed for this request: always wss (Twilio streams over nothing else, so a TLS
 * proxy in front of the gateway does not change what was signed), with and without the default port, as
 * Twilio's own validators allow.
 */
function signedUrls (url: string): string[] {
  const { hostname, port, pathname, search } = new URL(url)
  const path = `${pathname}${search}`
  if (port !== '' && port !== '443') return [`wss://${hostname}:${port}${path}`]
  return [`wss://${hostname}${path}`, `wss://${hostname}:443${path}`]
}

/** The signature Twilio sends when its <Stream url> is `url` (rtaa-sim's signing): of the URL as wss, as verified. */
export function signTwilioUrl (authToken: string, url: string): string {
  return twilioSignature(authToken, signedUrls(url)[0])
}

/** `accountSid`: the account the auth token belongs to (TWILIO_ACCOUNT_SID); null: the start's accountSid stands. */
export function createTwilioSignatureMethod (authToken: string, accountSid: string | null = null): AuthMethod {
  const tenancy: Tenancy = accountSid === null ? { kind: 'claimed' } : { kind: 'accounts', accounts: [accountSid] }
  return {
    name: TWILIO_SIGNATURE_METHOD,
    tenancy,
    applies: (request) => request.headers['x-twilio-signature'] !== undefined,
    async verify (request) {
      const header = request.headers['x-twilio-signature']
      const given = Buffer.from(typeof header === 'string' ? header : '')
      // Every variant is compared, in constant time, so timing says nothing about which one matched.
      let matched = false
      for (const url of signedUrls(request.url)) {
        const expected = Buffer.from(twilioSignature(authToken, url))
        if (expected.length === given.length && timingSafeEqual(expected, given)) matched = true
      }
      if (matched) return { method: 'vendor', name: TWILIO_SIGNATURE_METHOD, ip: request.ip, tenancy }
      return { status: 401, reason: 'bad_signature', message: 'invalid X-Twilio-Signature' }
    }
  }
}
