import type { Tenancy } from './tenancy.js'

/** Who a connection authenticated as, decided before the upgrade; `method` tells which auth method admitted it. */
export type Principal =
  | { method: 'ip', ip: string }
  /** `tenancy`: the accounts BASIC_AUTH_ACCOUNTS binds the key to. */
  | { method: 'basic', key: string, tenancy: Tenancy }
  /** `scopes`: the token's `scope` claim, space-separated (RFC 8693); `dashboard` opens the dashboard. */
  | { method: 'jwt', tenantId: string, subject: string | null, scopes: readonly string[] }
  | VendorPrincipal

/** Admitted by an auth method a vendor brings, such as a request signature; `name` is that method's name. */
export interface VendorPrincipal {
  method: 'vendor'
  name: string
  ip: string
  /** The accounts the vendor's credential belongs to. */
  tenancy: Tenancy
}

/** The name of the method that admitted a principal, as routes and vendors list methods. */
export function authMethodName (principal: Principal): string {
  return principal.method === 'vendor' ? principal.name : principal.method
}

/**
 * The tenants a connection may stream for. A credential brings its own; the IP allowlist vouches for no one, so the
 * vendor's list for it (`ipAccounts`, its <NAME>_ACCOUNT_SIDS) decides, and without one the start's claim stands.
 */
export function tenancyOf (principal: Principal, ipAccounts: readonly string[] | null): Tenancy {
  switch (principal.method) {
    case 'jwt':
      return { kind: 'tenant', tenantId: principal.tenantId }
    case 'basic':
    case 'vendor':
      return principal.tenancy
    case 'ip':
      return ipAccounts === null ? { kind: 'claimed' } : { kind: 'listed', accounts: ipAccounts }
  }
}

/** What the log line of a connection may say about its credential: the method and a Basic key, never a secret. */
export function credentialFields (principal: Principal): Record<string, string> {
  return principal.method === 'basic' ? { auth_method: 'basic', auth_key: principal.key } : { auth_method: authMethodName(principal) }
}
