import { Type } from '@sinclair/typebox'
import { TENANT_ID_PATTERN, accountListProblem, parseAccountList } from '../../auth/tenancy.js'
import { defineVendor } from '../vendor.js'
import { createPlivoAdapter } from './plivo-adapter.js'
import { plivoSimulator } from './plivo-simulator.js'

const PlivoConfig = Type.Object({
  /** On like Twilio: without PLIVO_AUTH_TOKEN, only the IP allowlist (loopback by default) admits Plivo. */
  SUPPORT_PLIVO: Type.Boolean({ default: true }),
  /** With it, Plivo connections are admitted by X-Plivo-Signature-V3; without it, by the IP allowlist. */
  PLIVO_AUTH_TOKEN: Type.Optional(Type.String({ minLength: 16 })),
  /** The account (Auth ID) PLIVO_AUTH_TOKEN belongs to: a signed stream's start must name it. */
  PLIVO_AUTH_ID: Type.Optional(Type.String({ pattern: TENANT_ID_PATTERN })),
  /** Comma-separated accountIds that streams admitted by the IP allowlist may name; empty: any. */
  PLIVO_ACCOUNT_SIDS: Type.String({ default: '' })
})

export const plivo = defineVendor({
  name: 'plivo',
  config: PlivoConfig,
  check: (config) => (config.PLIVO_AUTH_ID !== undefined && config.PLIVO_AUTH_TOKEN === undefined
    ? 'PLIVO_AUTH_ID names the account PLIVO_AUTH_TOKEN signs for: set PLIVO_AUTH_TOKEN too'
    : accountListProblem('PLIVO_ACCOUNT_SIDS', config.PLIVO_ACCOUNT_SIDS)),
  adapter: (config) => (config.SUPPORT_PLIVO
    ? createPlivoAdapter({ authToken: config.PLIVO_AUTH_TOKEN, accountId: config.PLIVO_AUTH_ID, ipAccounts: parseAccountList(config.PLIVO_ACCOUNT_SIDS) })
    : null),
  simulator: plivoSimulator
})
