import { Type } from '@sinclair/typebox'
import { defineVendor } from '../vendor.js'
import { createTwilioAdapter } from './twilio-adapter.js'
import { twilioSimulator } from './twilio-simulator.js'

const TwilioConfig = Type.Object({
  SUPPORT_TWILIO: Type.Boolean({ default: true }),
  /** With it, Twilio connections are admitted by X-Twilio-Signature; without it, by the IP allowlist. */
  TWILIO_AUTH_TOKEN: Type.Optional(Type.String({ minLength: 16 }))
})

export const twilio = defineVendor({
  name: 'twilio',
  config: TwilioConfig,
  adapter: (config) => (config.SUPPORT_TWILIO ? createTwilioAdapter(config.TWILIO_AUTH_TOKEN) : null),
  simulator: twilioSimulator
})
