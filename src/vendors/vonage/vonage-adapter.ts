import type { Static } from '@sinclair/typebox'
import { checkWholeSamples } from '../../audio/pcm.js'
import type { AuthMethod } from '../../auth/auth-method.js'
import type { StreamStart } from '../inbound-event.js'
import { createJsonEventDecoder, decodeAudio, toCounter, type EventMapping } from '../json-messages.js'
import { CloseCode, ProtocolError } from '../protocol-error.js'
import type { Detection, OutboundEncoder, VendorAdapter } from '../vendor-adapter.js'
import { vonageMessages, type ConnectedMessage } from './vonage-messages.js'

export const VONAGE_SAMPLE_RATES = [8000, 16000, 24000] as const

/** Vonage's frames, both ways, are 20 ms of audio (https://developer.vonage.com/en/voice/voice-api/concepts/websockets). */
const FRAME_MS = 20

export interface VonageAdapterOptions {
  /** The accounts a stream admitted by the IP allowlist may name (VONAGE_ACCOUNT_SIDS); null: any. */
  ipAccounts?: readonly string[] | null
  /** With it, Vonage is admitted by the token it signs (VONAGE_SIGNATURE_SECRET) and by nothing else. */
  signature?: AuthMethod
}

/**
 * The Vonage Voice API WebSocket (an NCCO `connect` action to a `websocket` endpoint): JSON text events, the caller's
 * audio (the call's mix) as binary L16 frames at the rate of the endpoint's `content-type`, and binary frames back.
 * There is no stop message: the call ends when the socket closes (`disconnected`).
 */
export function createVonageAdapter ({ ipAccounts = null, signature }: VonageAdapterOptions = {}): VendorAdapter {
  return {
    name: 'vonage',
    // The NCCO endpoint's authorization {"type":"custom","value":"Basic …"} is sent verbatim: Basic, as Exotel's.
    auth: signature === undefined ? ['ip', 'basic'] : [signature.name],
    authMethods: signature === undefined ? [] : [signature],
    ipAccounts,
    // The URL carries nothing of the stream's: the rate and the call id come in websocket:connected.
    accept: ({ principal }) => ({ principal }),
    detect: detectVonage,

    createDecoder () {
      const decodeText = createJsonEventDecoder('Vonage', vonageMessages, vonageEvents)
      return {
        decode (data, isBinary, withUnknownFields) {
          if (!isBinary) return decodeText(data, false, withUnknownFields)
          // Binary frames are PCM s16le, as Vonage's own tutorial writes them (a Uint16Array's buffer).
          return { event: { kind: 'media', pcm: decodeAudio(() => checkWholeSamples(data)), vendorSeq: null, timestampMs: null } }
        },
        // A 20 ms frame's size is the call's rate's, which websocket:connected names.
        outbound: (start) => vonageOutbound(start.sampleRate)
      }
    },

    // The default; each call plays at its own rate (the decoder's `outbound`).
    outbound: vonageOutbound(16000)
  }
}

/**
 * Vonage plays what the endpoint's content-type says, the call's own rate, in binary frames of exactly 20 ms: every
 * message is one frame, the last one padded.
 */
function vonageOutbound (sampleRate: number): OutboundEncoder {
  const frameBytes = (sampleRate * FRAME_MS / 1000) * 2
  return {
    sampleRate,
    chunks: { ms: FRAME_MS, multipleOf: frameBytes, minBytes: frameBytes, maxBytes: frameBytes },
    media: (_streamId, pcm) => pcm,
    // Vonage answers a notify with websocket:notify once the audio sent before it has played.
    mark: (_streamId, name) => JSON.stringify({ action: 'notify', payload: { name } }),
    clear: () => JSON.stringify({ action: 'clear' })
  }
}

/** Every Vonage text message has an `event` of its own `websocket:` namespace; the first is websocket:connected. */
function detectVonage (message: Record<string, unknown>): Detection {
  const { event } = message
  if (typeof event !== 'string' || !event.startsWith('websocket:')) return 'no'
  return event === 'websocket:connected' ? 'yes' : 'maybe'
}

/** `audio/l16;rate=16000`, in any case and with a space after the `;`: its rate, or null for anything else. */
function contentTypeRate (contentType: string): number | null {
  const match = /^audio\/l16;\s*rate=([0-9]+)$/i.exec(contentType.trim())
  return VONAGE_SAMPLE_RATES.find((rate) => match?.[1] === String(rate)) ?? null
}

/** websocket:connected is Vonage's start: it names the audio format, and the NCCO's headers at its top level. */
function startOf (message: Static<typeof ConnectedMessage>): StreamStart {
  const { event: _event, 'content-type': contentType, ...headers } = message
  const sampleRate = contentTypeRate(contentType)
  if (sampleRate === null) {
    throw new ProtocolError(CloseCode.UNSUPPORTED_DATA,
      `unsupported content-type ${JSON.stringify(contentType).slice(0, 70)}: Vonage streams audio/l16;rate=8000, 16000 or 24000`)
  }
  if (headers.call_id === undefined) {
    throw new ProtocolError(CloseCode.INVALID_PAYLOAD,
      'websocket:connected has no call_id: set "call_id" (the call\'s uuid) in the headers of the NCCO websocket endpoint')
  }
  return {
    callId: headers.call_id,
    accountId: headers.account_id ?? null,
    streamId: null,
    sampleRate,
    declaredSampleRate: null,
    from: headers.from ?? null,
    to: headers.to ?? null,
    // The NCCO endpoint's headers, all of them, as the operator set them.
    customParameters: headers
  }
}

const vonageEvents: EventMapping<typeof vonageMessages> = {
  'websocket:connected': (message) => ({ kind: 'start', start: startOf(message) }),
  'websocket:dtmf': ({ digit, duration }) => ({ kind: 'dtmf', digit, durationMs: toCounter(duration) }),
  'websocket:notify': ({ payload }) => ({ kind: 'mark', name: payload.name })
}
