/** Who a connection authenticated as, decided before the upgrade; `method` tells which auth method admitted it. */
export type Principal =
  | { method: 'ip', ip: string }
  | { method: 'basic', key: string }
  | { method: 'jwt', tenantId: string, subject: string | null }
  | VendorPrincipal

/** Admitted by an auth method a vendor brings, such as a request signature; `name` is that method's name. */
export interface VendorPrincipal {
  method: 'vendor'
  name: string
  ip: string
}

/** The name of the method that admitted a principal, as routes and vendors list methods. */
export function authMethodName (principal: Principal): string {
  return principal.method === 'vendor' ? principal.name : principal.method
}
