import { exotel } from './exotel/exotel.js'
import { native } from './native/native.js'
import { plivo } from './plivo/plivo.js'
import { telnyx } from './telnyx/telnyx.js'
import { twilio } from './twilio/twilio.js'
import { vonage } from './vonage/vonage.js'
import { audiohook } from './audiohook/audiohook.js'

/** The vendors this gateway ships, each behind its SUPPORT_<NAME> flag. Detection on /v1/ingest follows this order. */
export const builtInVendors = [exotel, twilio, native, plivo, telnyx, vonage, audiohook] as const
