import { Type } from '@sinclair/typebox'
import { TENANT_ID_PATTERN, accountListProblem, parseAccountList } from '../../auth/tenancy.js'
import { defineVendor } from '../vendor.js'
import { createVonageAdapter } from './vonage-adapter.js'
import { createVonageSignatureMethod } from './vonage-signature.js'
import { vonageSimulator } from './vonage-simulator.js'

const VonageConfig = Type.Object({
  SUPPORT_VONAGE: Type.Boolean({ default: true }),
  /** Comma-separated account ids (API keys) that streams admitted by the IP allowlist may name; empty: any. */
  VONAGE_ACCOUNT_SIDS: Type.String({ default: '' }),
  /** With it, Vonage connections are admitted by the token Vonage signs ("authorization": {"type": "vonage"}) only. */
  VONAGE_SIGNATURE_SECRET: Type.Optional(Type.String({ minLength: 16 })),
  /** The account (API key) VONAGE_SIGNATURE_SECRET belongs to: the token's api_key must name it; it is the tenant. */
  VONAGE_API_KEY: Type.Optional(Type.String({ pattern: TENANT_ID_PATTERN }))
})

export const vonage = defineVendor({
  name: 'vonage',
  config: VonageConfig,
  check: (config) => accountListProblem('VONAGE_ACCOUNT_SIDS', config.VONAGE_ACCOUNT_SIDS) ??
    ((config.VONAGE_SIGNATURE_SECRET === undefined) !== (config.VONAGE_API_KEY === undefined)
      ? 'VONAGE_SIGNATURE_SECRET and VONAGE_API_KEY must be set together: a signature secret belongs to one account'
      : null),
  adapter: (config) => (config.SUPPORT_VONAGE
    ? createVonageAdapter({
      ipAccounts: parseAccountList(config.VONAGE_ACCOUNT_SIDS),
      signature: config.VONAGE_SIGNATURE_SECRET === undefined || config.VONAGE_API_KEY === undefined
        ? undefined
        : createVonageSignatureMethod(config.VONAGE_SIGNATURE_SECRET, config.VONAGE_API_KEY)
    })
    : null),
  simulator: vonageSimulator
})
