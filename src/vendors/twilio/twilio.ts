import { Type } from '@sinclair/typebox'
import { TENANT_ID_PATTERN, accountListProblem, parseAccountList } from '../../auth/tenancy.js'
import { defineVendor } from '../vendor.js'
import { createTwilioAdapter } from './twilio-adapter.js'
import { twilioSimulator } from './twilio-simulator.js'

const TwilioConfig = Type.Object({
  SUPPORT_TWILIO: Type.Boolean({ default: true }),
  /** With it, Twilio connections are admitted by X-Twilio-Signature; without it, by the IP allowlist. */
  TWILIO_AUTH_TOKEN: Type.Optional(Type.String({ minLength: 16 })),
  /** The account TWILIO_AUTH_TOKEN belongs to: a signed stream's start must name it. */
  TWILIO_ACCOUNT_SID: Type.Optional(Type.String({ pattern: TENANT_ID_PATTERN })),
  /** Comma-separated accountSids that streams admitted by the IP allowlist may name; empty: any. */
  TWILIO_ACCOUNT_SIDS: Type.String({ default: '' })
})

export const twilio = defineVendor({
  name: 'twilio',
  config: TwilioConfig,
  check: (config) => accountListProblem('TWILIO_ACCOUNT_SIDS', config.TWILIO_ACCOUNT_SIDS),
  adapter: (config) => (config.SUPPORT_TWILIO
    ? createTwilioAdapter({ authToken: config.TWILIO_AUTH_TOKEN, accountSid: config.TWILIO_ACCOUNT_SID, ipAccounts: parseAccountList(config.TWILIO_ACCOUNT_SIDS) })
    : null),
  simulator: twilioSimulator
})
