import { createHash, timingSafeEqual } from 'node:crypto'

export interface Credential {
  key: string
  digest: Buffer
}

/** Parses `key:token,key:token`; the token may itself hold colons. Never echoes a token in errors. */
export function parseCredentials (list: string): Credential[] {
  const entries = list.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '')
  return entries.map((entry, index) => {
    const colon = entry.indexOf(':')
    if (colon < 1 || colon === entry.length - 1) {
      throw new Error(`entry ${index + 1} is not of the form key:token`)
    }
    return { key: entry.slice(0, colon), digest: digest(entry) }
  })
}

/** The key and token of an `Authorization: Basic` header (RFC 7617), or null for another scheme or a malformed one. */
export function basicCredentials (header: string | undefined): { key: string, token: string } | null {
  const match = /^\s*basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header ?? '')
  if (match === null) return null
  const decoded = Buffer.from(match[1], 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  return colon === -1 ? null : { key: decoded.slice(0, colon), token: decoded.slice(colon + 1) }
}

/**
 * Returns the key of the matching credential, or null. Every configured credential is compared, each over
 * fixed-length digests, so the time taken says nothing about which key or how much of the token matched.
 */
export function matchCredential (credentials: Credential[], key: string, token: string): string | null {
  const candidate = digest(`${key}:${token}`)
  let matched: string | null = null
  for (const credential of credentials) {
    if (timingSafeEqual(candidate, credential.digest)) matched = credential.key
  }
  return matched
}

function digest (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}
