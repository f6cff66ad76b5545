import { decodeBase64 } from '../../audio/pcm.js'
import { decodeMulaw, encodeMulaw } from '../../audio/mulaw.js'
import { createJsonEventDecoder, decodeAudio, toCounter, type EventMapping } from '../json-messages.js'
import type { Detection, VendorAdapter } from '../vendor-adapter.js'
import { TWILIO_SIGNATURE_METHOD, createTwilioSignatureMethod } from './twilio-signature.js'
import { twilioMessages } from './twilio-messages.js'

export const TWILIO_SAMPLE_RATE = 8000

/**
 * Twilio Media Streams (<Start><Stream> one-way, <Connect><Stream> two-way). Twilio connects from any public
 * address, so with an auth token it is admitted by its request signature; without one, by the IP allowlist.
 */
export interface TwilioAdapterOptions {
  /** With it, Twilio is admitted by its request signature; without it, by the IP allowlist. */
  authToken?: string
  /** The account the auth token belongs to; a signed stream's start must name it. */
  accountSid?: string
  /** The accounts a stream admitted by the IP allowlist may name; null: any. */
  ipAccounts?: readonly string[] | null
}

export function createTwilioAdapter ({ authToken, accountSid, ipAccounts = null }: TwilioAdapterOptions): VendorAdapter {
  return {
    name: 'twilio',
    auth: authToken === undefined ? ['ip'] : [TWILIO_SIGNATURE_METHOD],
    authMethods: authToken === undefined ? [] : [createTwilioSignatureMethod(authToken, accountSid ?? null)],
    ipAccounts,
    accept: ({ principal }) => ({ principal, sampleRate: TWILIO_SAMPLE_RATE }),
    detect: detectTwilio,
    createDecoder: () => ({ decode: createJsonEventDecoder('Twilio', twilioMessages, twilioEvents) }),
    outbound: {
      // Twilio plays μ-law at 8 kHz only, in messages of any whole number of samples.
      sampleRate: TWILIO_SAMPLE_RATE,
      chunks: { ms: 100, multipleOf: 2, minBytes: 2, maxBytes: 64_000 },
      media: (streamSid, pcm) => JSON.stringify({ event: 'media', streamSid, media: { payload: encodeMulaw(pcm).toString('base64') } }),
      mark: (streamSid, name) => JSON.stringify({ event: 'mark', streamSid, mark: { name } }),
      clear: (streamSid) => JSON.stringify({ event: 'clear', streamSid })
    }
  }
}

/** Twilio's ids are camelCase *Sid keys, and its connected says protocol "Call"; a counter is not Twilio's alone. */
function detectTwilio (message: Record<string, unknown>): Detection {
  if (typeof message.event !== 'string') return 'no'
  const start = typeof message.start === 'object' && message.start !== null ? message.start as Record<string, unknown> : {}
  if (message.protocol === 'Call' || 'streamSid' in message || 'callSid' in start || 'accountSid' in start) return 'yes'
  return 'maybe'
}

const twilioEvents: EventMapping<typeof twilioMessages> = {
  connected: () => ({ kind: 'connected' }),
  start: ({ start }) => ({
    kind: 'start',
    start: {
      callId: start.callSid,
      accountId: start.accountSid,
      streamId: start.streamSid,
      sampleRate: TWILIO_SAMPLE_RATE,
      declaredSampleRate: start.mediaFormat?.sampleRate ?? null,
      // Twilio sends no caller numbers; pass them as <Parameter>s and they arrive in custom_parameters.
      from: null,
      to: null,
      customParameters: start.customParameters ?? {},
      tracks: start.tracks
    }
  }),
  media: ({ sequenceNumber, media }) => ({
    kind: 'media',
    pcm: decodeMulaw(decodeAudio(() => decodeBase64(media.payload))),
    vendorSeq: toCounter(sequenceNumber),
    timestampMs: toCounter(media.timestamp),
    // Twilio numbers each track's chunks apart: with track="both_tracks", each leg is a track of its own.
    chunk: toCounter(media.chunk),
    track: media.track
  }),
  dtmf: ({ dtmf }) => ({ kind: 'dtmf', digit: dtmf.digit, durationMs: null }),
  mark: ({ mark }) => ({ kind: 'mark', name: mark.name }),
  stop: () => ({ kind: 'stop', reason: null })
}
