/** Who a connection authenticated as, decided before the upgrade. `method` names the auth method that admitted it. */
export type Principal =
  | { method: 'ip', ip: string }
  | { method: 'basic', key: string }
  | { method: 'jwt', tenantId: string, subject: string | null }
  | { method: string, ip?: string, key?: string, tenantId?: string }
