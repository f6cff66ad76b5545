import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { AuthMethod } from '../../auth/auth-method.js'
import type { Tenancy } from '../../auth/tenancy.js'

export const PLIVO_SIGNATURE_METHOD = 'plivo-signature'

/**
 * Plivo signs the WebSocket upgrade of an audio stream as it signs its webhooks: X-Plivo-Signature-V3 is
 * base64(HMAC-SHA256(auth token, `<URL>.<nonce>`)) with the nonce in X-Plivo-Signature-V3-Nonce, for a GET
 * (https://plivo.com/docs/voice-agents/audio-streaming/concepts/audio-streaming-guide, "Signature Validation"). The
 * string is built as Plivo's SDKs build it (`validateV3Signature`, https://github.com/plivo/plivo-node): the URL
 * without its query, then `?` and the query's `key=value` pairs sorted, when there is a query.
 */
export function plivoSignature (authToken: string, url: string, nonce: string): string {
  return createHmac('sha256', authToken).update(`${url}.${nonce}`).digest('base64')
}

/**
 * The URLs Plivo may have signed for this request. Plivo streams over TLS, so a proxy in front of the gateway does
 * not change what was signed: the URL as `<Stream>` names it (wss) and as Plivo's own stream SDK rebuilds it to
 * check the signature (https), each with and without the default port.
 */
function signedUrls (url: string): string[] {
  const { hostname, port, pathname, searchParams } = new URL(url)
  const query = sortedQuery(searchParams)
  const path = `${pathname}${query === '' ? '' : `?${query}`}`
  const hosts = port !== '' && port !== '443' ? [`${hostname}:${port}`] : [hostname, `${hostname}:443`]
  return ['wss', 'https'].flatMap((scheme) => hosts.map((host) => `${scheme}://${host}${path}`))
}

/** `key=value` pairs sorted by key, then by value, decoded and joined with `&`, as Plivo's SDKs sign a query. */
function sortedQuery (params: URLSearchParams): string {
  const byKey = new Map<string, string[]>()
  for (const [key, value] of params) byKey.set(key, [...(byKey.get(key) ?? []), value])
  return [...byKey.keys()].sort().flatMap((key) => (byKey.get(key) as string[]).sort().map((value) => `${key}=${value}`)).join('&')
}

/** The headers Plivo sends when its `<Stream>` URL is `url` (rtaa-sim's signing), signed as they are verified. */
export function signPlivoUpgrade (authToken: string, url: string, nonce = randomBytes(12).toString('hex')): Record<string, string> {
  return { 'x-plivo-signature-v3': plivoSignature(authToken, signedUrls(url)[0], nonce), 'x-plivo-signature-v3-nonce': nonce }
}

/** `accountId`: the account the auth token belongs to (PLIVO_AUTH_ID); null: the start's accountId stands. */
export function createPlivoSignatureMethod (authToken: string, accountId: string | null = null): AuthMethod {
  const tenancy: Tenancy = accountId === null ? { kind: 'claimed' } : { kind: 'accounts', accounts: [accountId] }
  return {
    name: PLIVO_SIGNATURE_METHOD,
    tenancy,
    applies: (request) => request.headers['x-plivo-signature-v3'] !== undefined,
    async verify (request) {
      const nonce = request.headers['x-plivo-signature-v3-nonce']
      if (typeof nonce !== 'string' || nonce === '') {
        return { status: 401, reason: 'missing_nonce', message: 'X-Plivo-Signature-V3 needs X-Plivo-Signature-V3-Nonce' }
      }
      const header = request.headers['x-plivo-signature-v3']
      // An account with more than one auth token gets one signature per token, comma-separated: any of them will do.
      const given = (typeof header === 'string' ? header : '').split(',').map((signature) => Buffer.from(signature.trim()))
      // Every pair is compared, in constant time, so timing says nothing about which one matched.
      let matched = false
      for (const url of signedUrls(request.url)) {
        const expected = Buffer.from(plivoSignature(authToken, url, nonce))
        for (const signature of given) {
          if (expected.length === signature.length && timingSafeEqual(expected, signature)) matched = true
        }
      }
      if (matched) return { method: 'vendor', name: PLIVO_SIGNATURE_METHOD, ip: request.ip, tenancy }
      return { status: 401, reason: 'bad_signature', message: 'invalid X-Plivo-Signature-V3' }
    }
  }
}
