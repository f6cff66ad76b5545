import { createHmac, sign, type KeyObject } from 'node:crypto'

/**
 * Signs JWTs with node:crypto alone, independently of the gateway's verifier, so a test can also forge the
 * tokens a verifier must refuse (alg none, wrong key, expired, a header that lies about the algorithm).
 */
export function signJwt (claims: Record<string, unknown>, key: string | KeyObject, alg: 'HS256' | 'RS256' | 'ES256' | 'none' = 'HS256',
  headerAlg: string = alg): string {
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const input = `${encode({ alg: headerAlg, typ: 'JWT' })}.${encode(claims)}`
  if (alg === 'none') return `${input}.`
  if (alg === 'HS256') return `${input}.${createHmac('sha256', key as string).update(input).digest('base64url')}`
  const signature = sign('sha256', Buffer.from(input), alg === 'ES256' ? { key: key as KeyObject, dsaEncoding: 'ieee-p1363' } : key as KeyObject)
  return `${input}.${signature.toString('base64url')}`
}

export function inSeconds (seconds: number): number {
  return Math.floor(Date.now() / 1000) + seconds
}
