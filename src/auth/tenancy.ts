/**
 * A tenant id: a customer account (Exotel's account_sid, Twilio's accountSid, a JWT's tenant_id claim). It is part
 * of Redis key and channel names, `{tenant:interaction_id}`, so it holds no `:`, `{` or `}`, and it never starts
 * with `_` or `~`, which mark "no tenant" and "not verified" there.
 */
export const TENANT_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$'

const TENANT_ID = new RegExp(TENANT_ID_PATTERN)

export function isTenantId (value: string): boolean {
  return TENANT_ID.test(value)
}

/** Which tenants a connection's credential vouches for; the account its start message names is held to it. */
export type Tenancy =
  /** Exactly this one, whatever the start names (a JWT's tenant_id claim). */
  | { kind: 'tenant', tenantId: string }
  /** One of a credential's own accounts (a Basic key's, a signature's): a start naming none takes the only one. */
  | { kind: 'accounts', accounts: readonly string[] }
  /**
   * One of a list for the IP allowlist (EXOTEL_ACCOUNT_SIDS): a vendor's addresses serve all its customers, so the
   * start must name its account.
   */
  | { kind: 'listed', accounts: readonly string[] }
  /** Nothing is configured: the account the start names, unverified, as the gateway has always taken it. */
  | { kind: 'claimed' }

export type TenantResolution =
  /** `verified`: a credential stands behind the tenant; an unverified one never shares a verified one's names. */
  | { tenantId: string | null, verified: boolean }
  | { refused: string }

/**
 * The tenant of a call: the credential's, never merely what the client claims. With several accounts and a start
 * that names none, no tenant can be trusted, so the call is refused.
 */
export function resolveTenant (tenancy: Tenancy, claimed: string | null): TenantResolution {
  switch (tenancy.kind) {
    case 'tenant':
      return { tenantId: tenancy.tenantId, verified: true }
    case 'claimed':
      return { tenantId: claimed, verified: false }
    case 'accounts':
    case 'listed':
      if (claimed !== null) {
        return tenancy.accounts.includes(claimed)
          ? { tenantId: claimed, verified: true }
          : { refused: `account ${claimed} is not one this credential may stream for` }
      }
      if (tenancy.kind === 'accounts' && tenancy.accounts.length === 1) return { tenantId: tenancy.accounts[0], verified: true }
      return { refused: tenancy.kind === 'listed' ? 'the start names no account' : 'the start names no account, and this credential may stream for several' }
  }
}

/** Account ids, split by `separator`; throws naming the first that is not one. */
function parseAccounts (list: string, separator: string): readonly string[] {
  const accounts = list.split(separator).map((account) => account.trim()).filter((account) => account !== '')
  if (accounts.length === 0) throw new Error('names no account')
  for (const account of accounts) {
    if (!isTenantId(account)) throw new Error(`has "${account}", which is not an account id (letters, digits and . _ @ + -)`)
  }
  return accounts
}

/** A comma-separated list of account ids (EXOTEL_ACCOUNT_SIDS); empty means none is configured. */
export function parseAccountList (list: string): readonly string[] | null {
  return list.trim() === '' ? null : parseAccounts(list, ',')
}

/** What is wrong with an account-list variable, as a configuration error says it, or null. */
export function accountListProblem (variable: string, list: string): string | null {
  try {
    parseAccountList(list)
    return null
  } catch (err) {
    return `env/${variable} ${(err as Error).message}`
  }
}

/**
 * BASIC_AUTH_ACCOUNTS: `key=ACa|ACb,key2=*`, the accounts each Basic key may stream for. Every key of
 * BASIC_AUTH_CREDENTIALS must have an entry, and every entry a key.
 */
export function parseBasicAccounts (list: string, keys: readonly string[]): ReadonlyMap<string, Tenancy> {
  const bound = new Map<string, Tenancy>()
  for (const entry of list.split(',').map((item) => item.trim()).filter((item) => item !== '')) {
    const equals = entry.indexOf('=')
    if (equals < 1) throw new Error(`entry "${entry}" is not of the form key=account|account or key=*`)
    const key = entry.slice(0, equals)
    if (!keys.includes(key)) throw new Error(`names key "${key}", which BASIC_AUTH_CREDENTIALS does not have`)
    if (bound.has(key)) throw new Error(`names key "${key}" twice`)
    const list = entry.slice(equals + 1).trim()
    try {
      bound.set(key, list === '*' ? { kind: 'claimed' } : { kind: 'accounts', accounts: parseAccounts(list, '|') })
    } catch (err) {
      throw new Error(`entry for key "${key}" ${(err as Error).message}`)
    }
  }
  const unbound = keys.filter((key) => !bound.has(key))
  if (unbound.length > 0) throw new Error(`has no entry for key "${unbound[0]}": list the accounts it may stream for, or * for any`)
  return bound
}
