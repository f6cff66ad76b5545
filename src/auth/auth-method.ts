import type { VendorPrincipal } from './principal.js'
import type { Tenancy } from './tenancy.js'

/** A parsed query string: a parameter given twice is an array. */
export type Query = Readonly<Record<string, string | readonly string[] | undefined>>

/** An authentication method a vendor brings, decided on the upgrade request alone. */
export interface AuthMethod {
  /** Unique among auth methods; vendors list it in their `auth`. */
  readonly name: string
  /** The accounts its principals may stream for. */
  readonly tenancy: Tenancy
  /** Whether the request carries this method's credential; the first method that applies decides. */
  applies (request: AuthRequest): boolean
  /** The principal, or the reason for refusing (logged, never with the credential). */
  verify (request: AuthRequest): Promise<VendorPrincipal | AuthFailure>
}

export interface AuthRequest {
  headers: Readonly<Record<string, string | string[] | undefined>>
  query: Query
  /** Client address, after TRUST_PROXY. */
  ip: string
  /** The URL the client asked for, as a vendor would have signed it: scheme, host, path and query. */
  url: string
}

export interface AuthFailure {
  status: 401 | 403
  /** A short token for the log line and metrics. */
  reason: string
  /** What the client is told. */
  message: string
  /** More for the log line; never the credential. */
  detail?: string
}
