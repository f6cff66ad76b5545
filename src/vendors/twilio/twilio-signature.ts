import { createHmac, timingSafeEqual } from 'node:crypto'
import type { AuthMethod } from '../vendor-adapter.js'

export const TWILIO_SIGNATURE_METHOD = 'twilio-signature'

/**
 * Twilio signs each request it makes with X-Twilio-Signature: base64(HMAC-SHA1(auth token, URL)). A WebSocket
 * upgrade is a GET with no body, so the URL alone is signed, exactly as configured in <Stream url="wss://…">.
 */
export function twilioSignature (authToken: string, url: string): string {
  return createHmac('sha1', authToken).update(url).digest('base64')
}

/** The URL with and without the default port, since Twilio may sign either form (as its own validators allow). */
function urlVariants (url: string): string[] {
  const parsed = new URL(url)
  const defaultPort = parsed.protocol === 'wss:' || parsed.protocol === 'https:' ? '443' : '80'
  if (parsed.port === '') {
    const withPort = new URL(url)
    withPort.host = `${parsed.hostname}:${defaultPort}`
    return [url, withPort.toString()]
  }
  if (parsed.port === defaultPort) {
    const withoutPort = new URL(url)
    withoutPort.port = ''
    return [url, withoutPort.toString()]
  }
  return [url]
}

export function createTwilioSignatureMethod (authToken: string): AuthMethod {
  return {
    name: TWILIO_SIGNATURE_METHOD,
    applies: (request) => request.headers['x-twilio-signature'] !== undefined,
    async verify (request) {
      const header = request.headers['x-twilio-signature']
      const given = Buffer.from(typeof header === 'string' ? header : '')
      // Every variant is compared, in constant time, so timing says nothing about which one matched.
      let matched = false
      for (const url of urlVariants(request.url)) {
        const expected = Buffer.from(twilioSignature(authToken, url))
        if (expected.length === given.length && timingSafeEqual(expected, given)) matched = true
      }
      if (matched) return { method: TWILIO_SIGNATURE_METHOD, ip: request.ip }
      return { status: 401, reason: 'bad_signature', message: 'invalid X-Twilio-Signature' }
    }
  }
}
