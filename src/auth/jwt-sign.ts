import { createHmac, createPrivateKey, sign, type KeyObject } from 'node:crypto'

export type JwtAlgorithm = 'HS256' | 'RS256' | 'ES256'

/**
 * Signs a JWT with node:crypto: what rtaa-token mints for the native protocol. `key` is the HS256 secret, or a
 * private key (PEM or KeyObject) whose type picks RS256 or ES256.
 */
export function signJwt (claims: Record<string, unknown>, key: string | KeyObject, algorithm?: JwtAlgorithm): string {
  const privateKey = typeof key === 'string' && key.includes('-----BEGIN') ? createPrivateKey(key) : key
  const alg: JwtAlgorithm = algorithm ?? (typeof privateKey === 'string' ? 'HS256' : privateKey.asymmetricKeyType === 'ec' ? 'ES256' : 'RS256')
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const input = `${encode({ alg, typ: 'JWT' })}.${encode(claims)}`
  if (alg === 'HS256') return `${input}.${createHmac('sha256', privateKey as string).update(input).digest('base64url')}`
  const signature = sign('sha256', Buffer.from(input), alg === 'ES256' ? { key: privateKey as KeyObject, dsaEncoding: 'ieee-p1363' } : privateKey as KeyObject)
  return `${input}.${signature.toString('base64url')}`
}
