import type { Config } from '../config.js'
import { createExotelAdapter } from './exotel/exotel-adapter.js'
import { createNativeAdapter } from './native/native-adapter.js'
import { createTwilioAdapter } from './twilio/twilio-adapter.js'
import type { VendorAdapter } from './vendor-adapter.js'

/** The vendors this gateway ships, each behind its SUPPORT_<VENDOR> flag. Detection on /v1/ingest follows this order. */
export function builtInVendors (config: Config): VendorAdapter[] {
  return [
    config.SUPPORT_EXOTEL ? createExotelAdapter(config.EXOTEL_DEFAULT_SAMPLE_RATE) : null,
    config.SUPPORT_TWILIO ? createTwilioAdapter(config.TWILIO_AUTH_TOKEN) : null,
    config.SUPPORT_NATIVE ? createNativeAdapter() : null
  ].filter((adapter) => adapter !== null)
}
