import type { Query } from '../../auth/auth-method.js'
import { decodeBase64Into, decodeBase64Pcm } from '../../audio/pcm.js'
import { createJsonEventDecoder, decodeAudio, toCounter, type EventMapping } from '../json-messages.js'
import { MediaScanner } from '../media-scanner.js'
import type { Detection, MediaFastPath, StreamContext, StreamDecoder, VendorAdapter } from '../vendor-adapter.js'
import { exotelMessages } from './exotel-messages.js'

export const EXOTEL_SAMPLE_RATES = [8000, 16000, 24000] as const

/**
 * Exotel's Stream (one-way) and Voicebot (two-way) applets: JSON events with base64 PCM s16le at the rate the URL's
 * `sample-rate` asks for (https://developer.exotel.com/docs/agentstream/websocket-protocol).
 */
export function createExotelAdapter (defaultSampleRate: number, ipAccounts: readonly string[] | null = null): VendorAdapter {
  return {
    name: 'exotel',
    auth: ['ip', 'basic'],
    ipAccounts,

    accept ({ query, principal }) {
      const sampleRate = requestedRate(query, defaultSampleRate)
      if (sampleRate === null) {
        // The client's value, quoted and cut short, goes into the answer and the log line.
        return { error: `sample-rate must be one of ${EXOTEL_SAMPLE_RATES.join(', ')}; got ${JSON.stringify(query['sample-rate'] ?? query.sample_rate).slice(0, 40)}` }
      }
      return { principal, sampleRate }
    },

    detect: detectExotel,

    createDecoder (context: StreamContext) {
      return decoderAt(context.sampleRate ?? defaultSampleRate)
    },

    outbound: {
      sampleRate: null,
      // Multiples of 320 bytes, at least 3,200, at most 100 KB: "Working with the Stream and Voicebot applet",
      // https://support.exotel.com/support/solutions/articles/3000108630
      chunks: { ms: 100, multipleOf: 320, minBytes: 3200, maxBytes: 100_000 },
      media: (streamId, pcm) => JSON.stringify({ event: 'media', stream_sid: streamId, media: { payload: pcm.toString('base64') } }),
      mark: (streamId, name) => JSON.stringify({ event: 'mark', stream_sid: streamId, mark: { name } }),
      clear: (streamId) => JSON.stringify({ event: 'clear', stream_sid: streamId })
    }
  }
}

/** The decoder is stateless: one per sample rate serves every connection at it. */
const decoders = new Map<number, StreamDecoder>()

function decoderAt (sampleRate: number): StreamDecoder {
  let decoder = decoders.get(sampleRate)
  if (decoder === undefined) {
    decoder = { decode: createJsonEventDecoder('Exotel', exotelMessages, exotelEvents(sampleRate)), fast: exotelFastMedia }
    decoders.set(sampleRate, decoder)
  }
  return decoder
}

/** MediaMessage (exotel-messages.ts), as the frame path reads it. */
const exotelMediaScanner = new MediaScanner({
  event: 'media',
  top: { sequence_number: 'sequence', stream_sid: 'id' },
  nestedKey: 'media',
  nested: { chunk: 'chunk', timestamp: 'timestamp', payload: 'payload' }
})

const exotelFastMedia: MediaFastPath = {
  scan: (data, into) => exotelMediaScanner.scan(data, into),
  // decodeBase64Pcm's rules, into the caller's buffer: the same decoder, the same checks.
  decodePcm: (data, scan, target) => {
    const bytes = decodeBase64Into(data.toString('latin1', scan.payloadStart, scan.payloadEnd), target)
    return bytes % 2 === 0 ? bytes : -1
  }
}

/**
 * `sample-rate` (or `sample_rate`) from the URL, written exactly as one of the rates; null for anything else, such as
 * 0x3E80, 16000.0 or 1.6e4, which Number() reads as 16000 too, or a parameter given twice. rtaa-sim reads the URL with it.
 */
export function requestedRate (query: Query, defaultSampleRate: number): number | null {
  const raw = query['sample-rate'] ?? query.sample_rate
  if (raw === undefined) return defaultSampleRate
  return EXOTEL_SAMPLE_RATES.find((rate) => raw === String(rate)) ?? null
}

/** Exotel's ids are snake_case *_sid keys; a counter such as sequence_number is not Exotel's alone. */
function detectExotel (message: Record<string, unknown>): Detection {
  if (typeof message.event !== 'string') return 'no'
  const start = typeof message.start === 'object' && message.start !== null ? message.start as Record<string, unknown> : {}
  if ('stream_sid' in message || 'call_sid' in start || 'account_sid' in start || 'stream_sid' in start) return 'yes'
  return 'maybe'
}

function exotelEvents (sampleRate: number): EventMapping<typeof exotelMessages> {
  return {
    connected: () => ({ kind: 'connected' }),
    start: ({ start, stream_sid: streamSid, streamSid: camelStreamSid }) => ({
      kind: 'start',
      start: {
        callId: start.call_sid,
        accountId: start.account_sid ?? null,
        streamId: streamSid ?? start.stream_sid ?? camelStreamSid ?? start.streamSid ?? null,
        sampleRate,
        declaredSampleRate: parseRate(start.media_format?.sample_rate),
        from: start.from ?? null,
        to: start.to ?? null,
        customParameters: start.custom_parameters ?? {}
      }
    }),
    media: ({ sequence_number: sequence, media }) => ({
      kind: 'media',
      pcm: decodeAudio(() => decodeBase64Pcm(media.payload)),
      vendorSeq: toCounter(sequence),
      timestampMs: toCounter(media.timestamp),
      chunk: toCounter(media.chunk)
    }),
    dtmf: ({ dtmf }) => ({ kind: 'dtmf', digit: dtmf.digit, durationMs: toCounter(dtmf.duration) }),
    mark: ({ mark }) => ({ kind: 'mark', name: mark.name }),
    stop: ({ stop }) => ({ kind: 'stop', reason: stop?.reason ?? null })
  }
}

/** "8000", 8000 and "8000Hz" all mean 8000; anything without leading digits means "not stated". */
function parseRate (value: number | string | undefined): number | null {
  if (value === undefined) return null
  const rate = typeof value === 'number' ? value : Number.parseInt(value, 10)
  return Number.isFinite(rate) ? rate : null
}
