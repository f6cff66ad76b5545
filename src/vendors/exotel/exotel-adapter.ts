import { decodeBase64Pcm } from '../../audio/pcm.js'
import type { InboundEvent } from '../inbound-event.js'
import { createJsonEventDecoder, decodeAudio, toCounter } from '../json-messages.js'
import type { Detection, StreamContext, VendorAdapter } from '../vendor-adapter.js'
import { exotelMessages, type DtmfMessage, type MarkMessage, type MediaMessage, type StartMessage, type StopMessage } from './exotel-messages.js'

export const EXOTEL_SAMPLE_RATES = [8000, 16000, 24000]

/**
 * Exotel's Stream (one-way) and Voicebot (two-way) applets (../shared/reference/exotel-protocol.md): JSON events
 * with base64 PCM s16le at the rate the URL's `sample-rate` asks for.
 */
export function createExotelAdapter (defaultSampleRate: number): VendorAdapter {
  return {
    name: 'exotel',
    auth: ['ip', 'basic'],
    messages: exotelMessages,

    accept ({ query, principal }) {
      const raw = query['sample-rate'] ?? query.sample_rate
      const sampleRate = raw === undefined ? defaultSampleRate : Number(raw)
      if (!EXOTEL_SAMPLE_RATES.includes(sampleRate)) {
        return { error: `sample-rate must be one of ${EXOTEL_SAMPLE_RATES.join(', ')}; got "${raw}"` }
      }
      return { principal, sampleRate }
    },

    detect: detectExotel,

    createDecoder (context: StreamContext) {
      const sampleRate = context.sampleRate ?? defaultSampleRate
      return { decode: createJsonEventDecoder('Exotel', exotelMessages, (event, message) => toInboundEvent(event, message, sampleRate)) }
    },

    outbound: {
      sampleRate: null,
      // Exotel's rules (exotel-protocol.md §5.1): multiples of 320 bytes, at least 3,200, at most 100 KB.
      chunks: { ms: 100, multipleOf: 320, minBytes: 3200, maxBytes: 100_000 },
      media: (streamId, pcm) => JSON.stringify({ event: 'media', stream_sid: streamId, media: { payload: pcm.toString('base64') } }),
      mark: (streamId, name) => JSON.stringify({ event: 'mark', stream_sid: streamId, mark: { name } }),
      clear: (streamId) => JSON.stringify({ event: 'clear', stream_sid: streamId })
    }
  }
}

/**
 * Exotel's ids are snake_case *_sid keys (stream_sid, call_sid, account_sid); Twilio's are their camelCase twins.
 * sequence_number alone decides nothing: Telnyx uses it too.
 */
function detectExotel (message: Record<string, unknown>): Detection {
  if (typeof message.event !== 'string') return 'no'
  const start = typeof message.start === 'object' && message.start !== null ? message.start as Record<string, unknown> : {}
  if ('stream_sid' in message || 'call_sid' in start || 'account_sid' in start || 'stream_sid' in start) return 'yes'
  if ('streamSid' in message || 'callSid' in start || message.protocol === 'Call') return 'no'
  return 'maybe'
}

// Each message has passed its compiled schema, so the casts restate what Check proved.
function toInboundEvent (event: string, message: Record<string, unknown>, sampleRate: number): InboundEvent {
  switch (event) {
    case 'start': {
      const { start, stream_sid: streamSid, streamSid: camelStreamSid } = message as StartMessage
      return {
        kind: 'start',
        start: {
          callId: start.call_sid,
          tenantId: start.account_sid ?? null,
          streamId: streamSid ?? start.stream_sid ?? camelStreamSid ?? start.streamSid ?? null,
          sampleRate,
          declaredSampleRate: parseRate(start.media_format?.sample_rate),
          from: start.from ?? null,
          to: start.to ?? null,
          customParameters: start.custom_parameters ?? {}
        }
      }
    }
    case 'media': {
      const { sequence_number: sequence, media } = message as MediaMessage
      return {
        kind: 'media',
        pcm: decodeAudio(() => decodeBase64Pcm(media.payload)),
        vendorSeq: toCounter(sequence),
        timestampMs: toCounter(media.timestamp),
        chunk: toCounter(media.chunk)
      }
    }
    case 'dtmf': {
      const { dtmf } = message as DtmfMessage
      return { kind: 'dtmf', digit: dtmf.digit, durationMs: toCounter(dtmf.duration) }
    }
    case 'mark':
      return { kind: 'mark', name: (message as MarkMessage).mark.name }
    case 'stop':
      return { kind: 'stop', reason: (message as StopMessage).stop?.reason ?? null }
    default:
      return { kind: 'connected' }
  }
}

/** "8000", 8000 and "8000Hz" all mean 8000; anything without leading digits means "not stated". */
function parseRate (value: number | string | undefined): number | null {
  if (value === undefined) return null
  const rate = typeof value === 'number' ? value : Number.parseInt(value, 10)
  return Number.isFinite(rate) ? rate : null
}
