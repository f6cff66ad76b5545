import type { Query } from '../../auth/auth-method.js'
import { decodeAlaw, encodeAlaw } from '../../audio/alaw.js'
import { decodeL16, encodeL16 } from '../../audio/l16.js'
import { decodeMulaw, encodeMulaw } from '../../audio/mulaw.js'
import { decodeBase64, pcmBytesPerMs } from '../../audio/pcm.js'
import type { Track } from '../inbound-event.js'
import { createJsonEventDecoder, decodeAudio, toCounter, type EventMapping } from '../json-messages.js'
import { CloseCode, ProtocolError } from '../protocol-error.js'
import type { Detection, StreamContext, VendorAdapter } from '../vendor-adapter.js'
import { TELNYX_TOKEN_HEADER, telnyxMessages } from './telnyx-messages.js'
import { TELNYX_TOKEN_METHOD, createTelnyxTokenMethod, tokenMatches } from './telnyx-token.js'

/** Telnyx's stream_track values, as the stream URL's `track` parameter repeats them, and the tracks each sends. */
export const TELNYX_STREAM_TRACKS: Readonly<Record<string, readonly Track[]>> = {
  inbound_track: ['inbound'],
  outbound_track: ['outbound'],
  both_tracks: ['inbound', 'outbound']
}

/** The codecs the gateway decodes and plays, each with the rates it may run at. */
const CODECS = {
  PCMU: { decode: decodeMulaw, encode: encodeMulaw, rates: [8000] },
  PCMA: { decode: decodeAlaw, encode: encodeAlaw, rates: [8000] },
  // RTP's L16 (no headers): big-endian. Telnyx plays it at 16 kHz; 8 kHz is L16's other telephony rate.
  L16: { decode: decodeL16, encode: encodeL16, rates: [8000, 16000] }
} as const

export type TelnyxCodec = keyof typeof CODECS
export const TELNYX_PLAYBACK_CODECS = Object.keys(CODECS) as TelnyxCodec[]
export const TELNYX_PLAYBACK_RATES = [8000, 16000] as const

/** How the start's media_format.encoding names each codec; older docs write the μ-law one as a MIME type. */
const ENCODINGS: Readonly<Record<string, TelnyxCodec>> = { PCMU: 'PCMU', 'audio/x-mulaw': 'PCMU', PCMA: 'PCMA', 'audio/x-alaw': 'PCMA', L16: 'L16' }

export interface TelnyxAdapterOptions {
  /** With it, Telnyx is admitted by its x-telnyx-streaming-auth-token header; without it, by the IP allowlist. */
  token?: string
  /** The account (user_id) the token belongs to; a stream admitted by the token must name it. */
  userId?: string
  /** The accounts a stream admitted by the IP allowlist may name; null: any. */
  ipAccounts?: readonly string[] | null
  /** What the stream was started with: stream_bidirectional_codec and stream_bidirectional_sampling_rate. */
  playback: { codec: TelnyxCodec, sampleRate: number }
}

/**
 * Telnyx Media Streaming (https://developers.telnyx.com/docs/voice/programmable-voice/media-streaming): JSON events,
 * base64 RTP payloads in the codec the start names, both legs when stream_track is both_tracks (which the stream URL
 * repeats as `track`, since the start does not say), and playback in the bidirectional RTP codec.
 */
export function createTelnyxAdapter ({ token, userId, ipAccounts = null, playback }: TelnyxAdapterOptions): VendorAdapter {
  const played = CODECS[playback.codec]
  const bytesPerMs = pcmBytesPerMs(playback.sampleRate)
  return {
    name: 'telnyx',
    auth: token === undefined ? ['ip'] : [TELNYX_TOKEN_METHOD],
    authMethods: token === undefined ? [] : [createTelnyxTokenMethod(token, userId ?? null)],
    ipAccounts,

    accept ({ query, principal }) {
      const tracks = requestedTracks(query)
      if (tracks === null) {
        return { error: `track must be one of ${Object.keys(TELNYX_STREAM_TRACKS).join(', ')}; got ${JSON.stringify(query.track).slice(0, 40)}` }
      }
      return { principal, tracks }
    },

    detect: detectTelnyx,

    createDecoder: (context: StreamContext) => ({ decode: createJsonEventDecoder('Telnyx', telnyxMessages, telnyxEvents(context, token)) }),

    outbound: {
      sampleRate: playback.sampleRate,
      // RTP chunks must hold 20 ms to 30 s of audio; a message carries 100 ms while more is queued.
      chunks: { ms: 100, multipleOf: 2, minBytes: 20 * bytesPerMs, maxBytes: 30_000 * bytesPerMs },
      media: (_streamId, pcm) => JSON.stringify({ event: 'media', media: { payload: played.encode(pcm).toString('base64') } }),
      mark: (_streamId, name) => JSON.stringify({ event: 'mark', mark: { name } }),
      clear: () => JSON.stringify({ event: 'clear' })
    }
  }
}

/** The tracks the URL's `track` names (inbound_track when absent); null for any other value, or one given twice. */
export function requestedTracks (query: Query): readonly Track[] | null {
  const raw = query.track
  if (raw === undefined) return TELNYX_STREAM_TRACKS.inbound_track
  return typeof raw === 'string' && Object.hasOwn(TELNYX_STREAM_TRACKS, raw) ? TELNYX_STREAM_TRACKS[raw] : null
}

/** Telnyx's ids are snake_case stream_id and start.call_control_id/call_session_id; sequence_number is Exotel's too. */
function detectTelnyx (message: Record<string, unknown>): Detection {
  if (typeof message.event !== 'string') return 'no'
  const start = typeof message.start === 'object' && message.start !== null ? message.start as Record<string, unknown> : {}
  if ('stream_id' in message || 'call_control_id' in start || 'call_session_id' in start) return 'yes'
  return 'maybe'
}

/** The codec and rate of the stream's audio; a codec the gateway cannot decode is refused with 1003, naming it. */
function streamFormat ({ encoding, sample_rate: rate }: { encoding: string, sample_rate: number }): { codec: TelnyxCodec, sampleRate: number } {
  const codec = Object.hasOwn(ENCODINGS, encoding) ? ENCODINGS[encoding] : undefined
  if (codec === undefined) {
    throw new ProtocolError(CloseCode.UNSUPPORTED_DATA, `Telnyx streams ${encoding}, which the gateway cannot decode: start the stream with stream_codec PCMU, PCMA or L16`)
  }
  const { rates } = CODECS[codec]
  // G.711 is 8 kHz whatever the start says (a mismatch is logged); L16's rate is the start's.
  if (codec !== 'L16') return { codec, sampleRate: rates[0] }
  if (!(rates as readonly number[]).includes(rate)) {
    throw new ProtocolError(CloseCode.UNSUPPORTED_DATA, `Telnyx streams L16 at ${rate} Hz, which the gateway does not take: ${rates.join(' or ')} Hz`)
  }
  return { codec, sampleRate: rate }
}

/** One connection's mapping: the codec is settled by its start, the tracks by its URL, the token by the settings. */
function telnyxEvents (context: StreamContext, token: string | undefined): EventMapping<typeof telnyxMessages> {
  const tracks = context.tracks ?? TELNYX_STREAM_TRACKS.inbound_track
  let codec: TelnyxCodec | null = null
  return {
    connected: ({ connected }) => {
      // The header admitted the connection; the copy in connected must agree with it.
      const given = connected?.[TELNYX_TOKEN_HEADER]
      if (token !== undefined && given !== undefined && !tokenMatches(token, given)) {
        throw new ProtocolError(CloseCode.POLICY_VIOLATION, `connected carries an ${TELNYX_TOKEN_HEADER} that does not match`)
      }
      return { kind: 'connected' }
    },
    start: ({ stream_id: streamId, start }) => {
      const format = streamFormat(start.media_format)
      codec = format.codec
      return {
        kind: 'start',
        start: {
          callId: start.call_session_id,
          accountId: start.user_id ?? null,
          streamId: streamId ?? null,
          sampleRate: format.sampleRate,
          declaredSampleRate: start.media_format.sample_rate,
          from: start.from ?? null,
          to: start.to ?? null,
          // The stream's own parameters, then Telnyx's ids for it, which win a clash.
          customParameters: {
            ...start.custom_parameters,
            ...definedOnly({ call_control_id: start.call_control_id, client_state: start.client_state, tags: start.tags })
          },
          // A caller-only stream is the default one-track call.
          ...(tracks.length === 1 && tracks[0] === 'inbound' ? {} : { tracks })
        }
      }
    },
    media: ({ sequence_number: sequence, media }) => {
      if (codec === null) throw new ProtocolError(CloseCode.POLICY_VIOLATION, 'media before start')
      const { decode } = CODECS[codec]
      const track = media.track ?? (tracks.length === 1 ? tracks[0] : null)
      if (track === null) throw new ProtocolError(CloseCode.INVALID_PAYLOAD, 'media without media.track on a both_tracks stream')
      return {
        kind: 'media',
        pcm: decodeAudio(() => decode(decodeBase64(media.payload))),
        vendorSeq: toCounter(sequence),
        timestampMs: toCounter(media.timestamp),
        // Telnyx does not promise order: the chunk counter lets the core count what came late or not at all.
        chunk: toCounter(media.chunk),
        track
      }
    },
    dtmf: ({ dtmf }) => ({ kind: 'dtmf', digit: dtmf.digit, durationMs: null }),
    mark: ({ mark }) => ({ kind: 'mark', name: mark.name }),
    stop: () => ({ kind: 'stop', reason: null }),
    // Telnyx's errors are about what the gateway sent (a malformed frame, bad media, too many requests); the stream goes on.
    error: ({ payload }) => ({
      kind: 'vendor-error',
      code: payload.code === undefined ? null : String(payload.code),
      title: payload.title ?? null,
      detail: payload.detail ?? null
    })
  }
}

function definedOnly (fields: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined))
}
