import { checkWholeSamples, decodeBase64 } from '../../audio/pcm.js'
import { decodeMulaw, encodeMulaw } from '../../audio/mulaw.js'
import { createJsonEventDecoder, decodeAudio, toCounter, type EventMapping } from '../json-messages.js'
import { CloseCode, ProtocolError } from '../protocol-error.js'
import type { Detection, OutboundEncoder, StreamDecoder, VendorAdapter } from '../vendor-adapter.js'
import { PLIVO_SIGNATURE_METHOD, createPlivoSignatureMethod } from './plivo-signature.js'
import { plivoMessages } from './plivo-messages.js'

/**
 * What `<Stream contentType>` may ask for, as the start's `mediaFormat` names it: μ-law at 8 kHz, or 16-bit linear
 * PCM (L16) at 8 or 16 kHz (https://plivo.com/docs/voice/xml/audiostream). Plivo's L16 is little-endian: its own
 * stream SDK's demo hands it to Deepgram as `linear16` and plays ElevenLabs' `pcm_16000` back as `audio/x-l16`
 * unconverted (https://github.com/plivo/plivo-stream-sdk-python, examples/demo/server.py).
 */
export const PLIVO_FORMATS = { 'audio/x-mulaw': [8000], 'audio/x-l16': [8000, 16000] } as const

export type PlivoEncoding = keyof typeof PLIVO_FORMATS

export interface PlivoAdapterOptions {
  /** With it, Plivo is admitted by its upgrade signature; without it, by the IP allowlist. */
  authToken?: string
  /** The account the auth token belongs to; a signed stream's start must name it. */
  accountId?: string
  /** The accounts a stream admitted by the IP allowlist may name; null: any. */
  ipAccounts?: readonly string[] | null
}

/**
 * Plivo Audio Streams (`<Stream>`, one-way or `bidirectional="true"`). Plivo connects from public addresses and signs
 * its upgrades, so with an auth token it is admitted by its signature; without one, by the IP allowlist.
 */
export function createPlivoAdapter ({ authToken, accountId, ipAccounts = null }: PlivoAdapterOptions): VendorAdapter {
  return {
    name: 'plivo',
    auth: authToken === undefined ? ['ip'] : [PLIVO_SIGNATURE_METHOD],
    authMethods: authToken === undefined ? [] : [createPlivoSignatureMethod(authToken, accountId ?? null)],
    ipAccounts,
    // The format comes with the start, not the URL.
    accept: ({ principal }) => ({ principal }),
    detect: detectPlivo,
    createDecoder: createPlivoDecoder,
    // Plivo's default; each call plays back in the format its start names (the decoder's `outbound`).
    outbound: plivoOutbound('audio/x-mulaw', 8000)
  }
}

/**
 * How a call's playback goes out: `playAudio` in the stream's own encoding and rate, which Plivo requires; `checkpoint`,
 * answered with `playedStream` once the audio before it has played; `clearAudio`
 * (https://plivo.com/docs/voice/audio-streaming/audio-streaming). Plivo takes WebSocket messages of up to 64 KB and
 * advises at most 16 KB of base64 a chunk (https://plivo.com/docs/voice-agents/audio-streaming/concepts/audio-streaming-guide,
 * "Limits"); 100 ms is far below that at either rate.
 */
export function plivoOutbound (encoding: PlivoEncoding, sampleRate: number): OutboundEncoder {
  const mulaw = encoding === 'audio/x-mulaw'
  return {
    sampleRate,
    // In bytes of PCM s16le: μ-law halves them, base64 adds a third.
    chunks: { ms: 100, multipleOf: 2, minBytes: 2, maxBytes: mulaw ? 24_000 : 12_000 },
    media: (_streamId, pcm) => JSON.stringify({
      event: 'playAudio',
      media: { contentType: encoding, sampleRate, payload: (mulaw ? encodeMulaw(pcm) : pcm).toString('base64') }
    }),
    mark: (streamId, name) => JSON.stringify({ event: 'checkpoint', streamId, name }),
    clear: (streamId) => JSON.stringify({ event: 'clearAudio', streamId })
  }
}

/**
 * Plivo's ids are camelCase `start.callId` and `start.streamId`; a counter such as sequenceNumber is not Plivo's alone.
 * Plivo opens with its start and sends no `connected`.
 */
function detectPlivo (message: Record<string, unknown>): Detection {
  if (typeof message.event !== 'string' || message.event === 'connected') return 'no'
  const start = typeof message.start === 'object' && message.start !== null ? message.start as Record<string, unknown> : {}
  if ('callId' in start || 'streamId' in start) return 'yes'
  return 'maybe'
}

/** One connection's decoder: the start settles the audio format of its media and playback. */
function createPlivoDecoder (): StreamDecoder {
  let encoding: PlivoEncoding | null = null
  /**
   * The stream's first media timestamp: Plivo's are Unix milliseconds, the contract's count from the stream's start.
   * One origin for both tracks keeps the caller's and the agent's frames on one time line.
   */
  let firstTimestamp: number | null = null

  const events: EventMapping<typeof plivoMessages> = {
    start: ({ start, extra_headers: extraHeaders }) => {
      encoding = supportedEncoding(start.mediaFormat.encoding, start.mediaFormat.sampleRate)
      return {
        kind: 'start',
        start: {
          callId: start.callId,
          accountId: start.accountId,
          streamId: start.streamId,
          sampleRate: start.mediaFormat.sampleRate,
          declaredSampleRate: null,
          // Plivo's start carries no numbers; pass them in extraHeaders and they arrive in custom_parameters.
          from: null,
          to: null,
          customParameters: parseExtraHeaders(extraHeaders),
          ...(start.tracks === undefined ? {} : { tracks: start.tracks })
        }
      }
    },
    media: ({ sequenceNumber, media }) => {
      if (encoding === null) throw new ProtocolError(CloseCode.POLICY_VIOLATION, 'media before start')
      const audio = decodeAudio(() => decodeBase64(media.payload))
      const timestamp = toCounter(media.timestamp)
      return {
        kind: 'media',
        pcm: encoding === 'audio/x-mulaw' ? decodeMulaw(audio) : decodeAudio(() => checkWholeSamples(audio)),
        vendorSeq: toCounter(sequenceNumber),
        timestampMs: timestamp === null ? null : timestamp - (firstTimestamp ??= timestamp),
        chunk: toCounter(media.chunk),
        ...(media.track === undefined ? {} : { track: media.track })
      }
    },
    dtmf: ({ dtmf }) => ({ kind: 'dtmf', digit: dtmf.digit, durationMs: null }),
    playedStream: ({ name }) => ({ kind: 'mark', name }),
    played: ({ name }) => ({ kind: 'mark', name }),
    // The marks a clear drops were reported when clearAudio went out; the confirmation adds nothing.
    clearedAudio: () => ({ kind: 'unknown', event: 'clearedAudio' }),
    stop: ({ reason }) => ({ kind: 'stop', reason: reason ?? null })
  }

  return {
    decode: createJsonEventDecoder('Plivo', plivoMessages, events),
    outbound: (start) => plivoOutbound(encoding ?? 'audio/x-mulaw', start.sampleRate)
  }
}

/** The start's format, when the gateway decodes it; anything else is refused with 1003. */
function supportedEncoding (encoding: string, sampleRate: number): PlivoEncoding {
  const rates: readonly number[] | undefined = PLIVO_FORMATS[encoding as PlivoEncoding]
  if (rates?.includes(sampleRate) === true) return encoding as PlivoEncoding
  // Within the 123 bytes of a close reason for any encoding Plivo names today.
  const supported = Object.entries(PLIVO_FORMATS).map(([name, rates]) => `${name} at ${rates.join(' or ')}`).join(', ')
  throw new ProtocolError(CloseCode.UNSUPPORTED_DATA, `Plivo audio ${JSON.stringify(encoding).slice(0, 40)} at ${sampleRate} Hz is not supported: use ${supported}`)
}

/**
 * `<Stream extraHeaders>` as custom parameters: `userId=12345;sessionId=abc-xyz` (the start's example) or
 * `test1=12,test2=123` (the XML reference's), so either separator; an entry without a key is skipped. The schema bounds
 * the string, and so the number of entries.
 */
export function parseExtraHeaders (extraHeaders: string | undefined): Record<string, string> {
  if (extraHeaders === undefined) return {}
  return Object.fromEntries(extraHeaders.split(/[;,]/).flatMap((entry) => {
    const equals = entry.indexOf('=')
    const key = (equals === -1 ? '' : entry.slice(0, equals)).trim()
    return key === '' ? [] : [[key, entry.slice(equals + 1).trim()]]
  }))
}
