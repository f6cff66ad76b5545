import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import type { AuthFailure, AuthMethod, AuthRequest } from '../../auth/auth-method.js'
import type { VendorPrincipal } from '../../auth/principal.js'
import { isTenantId, type Tenancy } from '../../auth/tenancy.js'

export const AUDIOHOOK_KEY_METHOD = 'audiohook-key'

/**
 * The components Genesys signs, as the AudioHook specification's example request lists them
 * (https://developer.genesys.cloud/devapps/audiohook/security): all of them must be covered.
 */
export const SIGNED_COMPONENTS = ['@request-target', '@authority', 'audiohook-organization-id', 'audiohook-session-id', 'audiohook-correlation-id', 'x-api-key'] as const

/** A signature older than this (from its `created`) is refused: Genesys signs each upgrade just before it connects. */
export const MAX_SIGNATURE_AGE_S = 30
/** The clocks of Genesys and the gateway may differ by this much. */
const CLOCK_SKEW_S = 5
/** Nonces kept against replay, at most: a flood of signed upgrades beyond it is refused rather than forgotten. */
const MAX_NONCES = 100_000

/** One entry of AUDIOHOOK_CREDENTIALS: the organization an API key belongs to, and its client secret (decoded). */
export interface AudioHookCredential {
  organizationId: string
  apiKey: string
  /** The client secret's bytes (Genesys shows it base64); null: the key alone admits, unsigned. */
  secret: Buffer | null
}

/**
 * AUDIOHOOK_CREDENTIALS: `organizationId:apiKey` or `organizationId:apiKey:clientSecret`, comma-separated, the
 * secret base64 as Genesys shows it. Throws naming what is wrong, never quoting a key or a secret.
 */
export function parseAudioHookCredentials (list: string): AudioHookCredential[] {
  const credentials: AudioHookCredential[] = []
  const entries = list.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '')
  if (entries.length === 0) throw new Error('names no credential')
  for (const [i, entry] of entries.entries()) {
    const parts = entry.split(':')
    const where = `entry ${i + 1}`
    if (parts.length < 2 || parts.length > 3) throw new Error(`${where} is not organizationId:apiKey or organizationId:apiKey:clientSecret`)
    const [organizationId, apiKey, secret] = parts
    if (!isTenantId(organizationId)) throw new Error(`${where}: the organization id must be letters, digits and . _ @ + - (a Genesys organization id is a UUID)`)
    if (!/^[\x21-\x7e]{8,256}$/.test(apiKey)) throw new Error(`${where}: the API key must be 8-256 printable characters`)
    if (credentials.some((other) => other.apiKey === apiKey)) throw new Error(`${where}: its API key is also another entry's`)
    if (secret !== undefined && !(/^[A-Za-z0-9+/]{16,}={0,2}$/.test(secret) && secret.length % 4 === 0)) {
      throw new Error(`${where}: the client secret must be base64 (as Genesys shows it), at least 16 characters`)
    }
    credentials.push({ organizationId, apiKey, secret: secret === undefined ? null : Buffer.from(secret, 'base64') })
  }
  return credentials
}

/** The credential whose API key is `given`: every key is compared, in constant time, whichever matches. */
function matchKey (credentials: readonly AudioHookCredential[], given: string): AudioHookCredential | null {
  const digest = createHash('sha256').update(given).digest()
  let found: AudioHookCredential | null = null
  for (const credential of credentials) {
    if (timingSafeEqual(createHash('sha256').update(credential.apiKey).digest(), digest)) found = credential
  }
  return found
}

/**
 * Genesys's AudioHook client authenticates its upgrade (https://developer.genesys.cloud/devapps/audiohook/security)
 * with `X-API-KEY`, and, when the integration has a client secret, an RFC 9421 HTTP message signature
 * (HMAC-SHA256 keyed with the secret) over the request target, the authority, the `audiohook-*` headers and the key.
 * Each key belongs to one organization, which must be the `Audiohook-Organization-Id` it sends, and is the tenant.
 * A signature must be fresh and its nonce unused within its lifetime.
 */
export function createAudioHookKeyMethod (credentials: readonly AudioHookCredential[]): AuthMethod {
  const nonces = new NonceSet(MAX_NONCES)
  return {
    name: AUDIOHOOK_KEY_METHOD,
    tenancy: { kind: 'accounts', accounts: [...new Set(credentials.map(({ organizationId }) => organizationId))] },
    applies: (request) => request.headers['x-api-key'] !== undefined,
    async verify (request) {
      const apiKey = header(request, 'x-api-key')
      const credential = apiKey === null ? null : matchKey(credentials, apiKey)
      if (credential === null) return { status: 401, reason: 'bad_api_key', message: 'invalid X-API-KEY' }
      if (header(request, 'audiohook-organization-id') !== credential.organizationId) {
        return { status: 403, reason: 'wrong_organization', message: 'Audiohook-Organization-Id is not the organization of this API key' }
      }
      if (credential.secret !== null) {
        const now = Date.now() / 1000
        const checked = verifySignature(request, credential.apiKey, credential.secret, now)
        if ('status' in checked) return checked
        if (!nonces.add(`${credential.apiKey}\n${checked.nonce}`, now, checked.validUntil)) {
          return { status: 401, reason: 'nonce_reused', message: 'invalid signature', detail: 'the signature\'s nonce was already used' }
        }
      }
      const tenancy: Tenancy = { kind: 'accounts', accounts: [credential.organizationId] }
      const principal: VendorPrincipal = { method: 'vendor', name: AUDIOHOOK_KEY_METHOD, ip: request.ip, tenancy }
      return principal
    }
  }
}

/** Nonces seen, each until its signature could no longer pass; bounded, oldest first. */
class NonceSet {
  readonly #until = new Map<string, number>()
  readonly #max: number

  constructor (max: number) {
    this.#max = max
  }

  /** False when the nonce is already held, or when the set is full of live ones. */
  add (nonce: string, now: number, until: number): boolean {
    for (const [old, expiry] of this.#until) {
      if (expiry > now) break
      this.#until.delete(old)
    }
    // Expiries are not strictly in insertion order (a signature's own `expires` may come sooner): the sweep above
    // stops at the first live one, so an expired entry behind it is also checked here.
    const held = this.#until.get(nonce)
    if (held !== undefined && held > now) return false
    if (this.#until.size >= this.#max) return false
    this.#until.delete(nonce)
    this.#until.set(nonce, until)
    return true
  }
}

/** A signature that verified: its nonce, and until when it would verify again (what the nonce must be kept for). */
export interface VerifiedSignature {
  nonce: string
  validUntil: number
}

/**
 * Checks the request's Signature and Signature-Input (RFC 9421) against `secret` at time `now` (epoch seconds):
 * one signature, covering every component Genesys signs, keyid the API key, hmac-sha256, created not in the future
 * and at most MAX_SIGNATURE_AGE_S old, expires (when given) not past, a nonce.
 */
export function verifySignature (request: AuthRequest, apiKey: string, secret: Buffer, now: number): VerifiedSignature | AuthFailure {
  const fail = (reason: string, detail: string): AuthFailure => ({ status: 401, reason, message: 'invalid signature', detail })
  const input = header(request, 'signature-input')
  const signatureHeader = header(request, 'signature')
  if (input === null || signatureHeader === null) return fail('unsigned', 'this API key has a client secret: Signature and Signature-Input are required')
  const parsed = parseSignatureInput(input)
  if (parsed === null) return fail('bad_signature_input', 'Signature-Input is not one signature of quoted components and parameters')
  const signature = parseSignature(signatureHeader, parsed.label)
  if (signature === null) return fail('bad_signature', `Signature has no byte sequence labelled ${parsed.label}`)
  const { components, params } = parsed
  const missing = SIGNED_COMPONENTS.filter((name) => !components.includes(name))
  if (missing.length > 0) return fail('components_missing', `the signature does not cover ${missing.join(', ')}`)
  if (params.alg !== undefined && params.alg !== 'hmac-sha256') return fail('bad_algorithm', 'alg must be hmac-sha256')
  if (params.keyid !== apiKey) return fail('keyid_mismatch', 'keyid is not the X-API-KEY')
  if (typeof params.nonce !== 'string' || params.nonce === '') return fail('nonce_missing', 'the signature has no nonce')
  const { created, expires } = params
  if (typeof created !== 'number') return fail('created_missing', 'the signature has no created time')
  if (created > now + CLOCK_SKEW_S) return fail('signature_future', 'created is in the future')
  if (created + MAX_SIGNATURE_AGE_S < now - CLOCK_SKEW_S) return fail('signature_stale', `created is more than ${MAX_SIGNATURE_AGE_S} s ago`)
  if (expires !== undefined && (typeof expires !== 'number' || expires < now - CLOCK_SKEW_S)) return fail('signature_expired', 'expires has passed')

  const lines: string[] = []
  for (const name of components) {
    const value = componentValue(request, name)
    if (value === null) return fail('component_unavailable', `the request has no ${name}`)
    lines.push(`"${name}": ${value}`)
  }
  lines.push(`"@signature-params": ${serializeSignatureParams(components, parsed.paramList)}`)
  const expected = createHmac('sha256', secret).update(lines.join('\n')).digest()
  if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) return fail('bad_signature', 'the signature does not match')
  const validUntil = Math.min(created + MAX_SIGNATURE_AGE_S, typeof expires === 'number' ? expires : Infinity) + CLOCK_SKEW_S
  return { nonce: params.nonce, validUntil }
}

/** A component's value as RFC 9421 derives it: the request target is the path and query, the authority the host. */
function componentValue (request: AuthRequest, name: string): string | null {
  if (name === '@request-target' || name === '@authority') {
    const url = new URL(request.url)
    return name === '@request-target' ? `${url.pathname}${url.search}` : url.host
  }
  if (name.startsWith('@')) return null
  return header(request, name)
}

type Param = string | number | boolean

interface SignatureInput {
  label: string
  components: string[]
  params: { alg?: Param, keyid?: Param, nonce?: Param, created?: Param, expires?: Param }
  /** The parameters in the order given, which the signature base repeats. */
  paramList: Array<[string, Param]>
}

const TOKEN_KEY = '[a-z*][a-z0-9_.*-]*'

/**
 * `label=("@request-target" "x-api-key");keyid="…";created=1641013200`: one dictionary member (RFC 8941), an inner
 * list of strings with parameters that are strings or integers. Anything else is null.
 */
function parseSignatureInput (value: string): SignatureInput | null {
  const match = new RegExp(`^\\s*(${TOKEN_KEY})=\\(([^()]*)\\)((?:;${TOKEN_KEY}=(?:"[^"\\\\]*"|-?[0-9]{1,15}))*)\\s*$`).exec(value)
  if (match === null) return null
  const [, label, list, paramText] = match
  const components = list.trim() === '' ? [] : list.trim().split(/ +/).map((item) => /^"([^"\\]*)"$/.exec(item)?.[1] ?? null)
  if (components.some((component) => component === null)) return null
  const paramList: Array<[string, Param]> = []
  for (const [, key, text, number] of paramText.matchAll(new RegExp(`;(${TOKEN_KEY})=(?:"([^"\\\\]*)"|(-?[0-9]{1,15}))`, 'g'))) {
    paramList.push([key, text ?? Number(number)])
  }
  const keys = paramList.map(([key]) => key)
  if (new Set(keys).size !== keys.length || new Set(components).size !== components.length) return null
  return { label, components: components as string[], params: Object.fromEntries(paramList), paramList }
}

/** `label=:base64:`, possibly among other members: the bytes of the one labelled `label`. */
function parseSignature (value: string, label: string): Buffer | null {
  for (const member of value.split(',')) {
    const match = new RegExp(`^\\s*(${TOKEN_KEY})=:([A-Za-z0-9+/]*={0,2}):\\s*$`).exec(member)
    if (match?.[1] === label) return Buffer.from(match[2], 'base64')
  }
  return null
}

function serializeSignatureParams (components: readonly string[], params: ReadonlyArray<[string, Param]>): string {
  const list = `(${components.map((name) => `"${name}"`).join(' ')})`
  return list + params.map(([key, value]) => `;${key}=${typeof value === 'string' ? `"${value}"` : String(value)}`).join('')
}

/** A header's value, trimmed; null when absent or given twice. */
function header (request: AuthRequest, name: string): string | null {
  const value = request.headers[name]
  return typeof value === 'string' ? value.trim() : null
}

/**
 * The headers Genesys's AudioHook client sends on its upgrade to `url`, signed as it signs them: rtaa-sim's, and the
 * tests'. `nonce` and `created` are the signature's.
 */
export function signAudioHookUpgrade (url: string, credential: { organizationId: string, apiKey: string, secret: Buffer | null },
  session: { sessionId: string, correlationId: string, nonce: string, created: number }): Record<string, string> {
  const headers: Record<string, string> = {
    'audiohook-organization-id': credential.organizationId,
    'audiohook-session-id': session.sessionId,
    'audiohook-correlation-id': session.correlationId,
    'x-api-key': credential.apiKey
  }
  if (credential.secret === null) return headers
  const { pathname, search, host } = new URL(url)
  const values: Record<string, string> = { '@request-target': `${pathname}${search}`, '@authority': host, ...headers }
  const params: Array<[string, Param]> = [['keyid', credential.apiKey], ['nonce', session.nonce], ['alg', 'hmac-sha256'], ['created', session.created], ['expires', session.created + MAX_SIGNATURE_AGE_S]]
  const signatureParams = serializeSignatureParams(SIGNED_COMPONENTS, params)
  const base = [...SIGNED_COMPONENTS.map((name) => `"${name}": ${values[name]}`), `"@signature-params": ${signatureParams}`].join('\n')
  return {
    ...headers,
    'signature-input': `sig1=${signatureParams}`,
    signature: `sig1=:${createHmac('sha256', credential.secret).update(base).digest('base64')}:`
  }
}
