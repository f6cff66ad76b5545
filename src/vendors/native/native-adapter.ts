import { checkWholeSamples } from '../../audio/pcm.js'
import { createJsonEventDecoder, decodeAudio, type EventMapping } from '../json-messages.js'
import { CloseCode, type ProtocolError } from '../protocol-error.js'
import type { VendorAdapter } from '../vendor-adapter.js'
import { NATIVE_DEFAULT_SAMPLE_RATE, nativeMessages } from './native-messages.js'

/**
 * The `code` of the error message sent before a close, by close code. Closes that ws makes itself (1009 for a
 * message over MAX_MESSAGE_BYTES, 1002, invalid UTF-8) come without one: the socket is already closing.
 */
const ERROR_CODES: Record<number, string> = {
  [CloseCode.INVALID_PAYLOAD]: 'invalid_message',
  [CloseCode.POLICY_VIOLATION]: 'protocol_violation',
  [CloseCode.INTERNAL_ERROR]: 'internal_error'
}

/**
 * The gateway's own protocol (docs/native-protocol.md): a JWT at the upgrade (the token's tenant_id claim is the
 * tenant), a JSON start, binary frames of raw PCM s16le, a JSON stop. The server acknowledges start and explains
 * errors before closing.
 */
export function createNativeAdapter (): VendorAdapter {
  return {
    name: 'native',
    auth: ['jwt'],
    accept: ({ principal }) => ({ principal }),
    // A native stream always opens with its start, which only it keys by interaction_id.
    detect: (message) => (message.event === 'start' && 'interaction_id' in message ? 'yes' : 'no'),

    createDecoder () {
      const decodeText = createJsonEventDecoder('native', nativeMessages, nativeEvents)
      return {
        decode (data, isBinary, withUnknownFields) {
          if (!isBinary) return decodeText(data, false, withUnknownFields)
          return { event: { kind: 'media', pcm: decodeAudio(() => checkWholeSamples(data)), vendorSeq: null, timestampMs: null } }
        },
        started: (start) => JSON.stringify({ event: 'started', interaction_id: start.callId }),
        rejected: (error: ProtocolError) => JSON.stringify({ event: 'error', code: ERROR_CODES[error.closeCode] ?? 'error', message: error.message })
      }
    }
  }
}

// The start names no account: the token's tenant_id claim is the tenant.
const nativeEvents: EventMapping<typeof nativeMessages> = {
  start: (start) => ({
    kind: 'start',
    start: {
      callId: start.interaction_id,
      accountId: null,
      streamId: null,
      sampleRate: start.sample_rate ?? NATIVE_DEFAULT_SAMPLE_RATE,
      declaredSampleRate: null,
      from: null,
      to: null,
      customParameters: start.metadata ?? {}
    }
  }),
  stop: (stop) => ({ kind: 'stop', reason: stop.reason ?? null })
}
