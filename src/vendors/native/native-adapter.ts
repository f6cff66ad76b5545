import { checkWholeSamples } from '../../audio/pcm.js'
import type { InboundEvent } from '../inbound-event.js'
import { createJsonEventDecoder, decodeAudio } from '../json-messages.js'
import { CloseCode, type ProtocolError } from '../protocol-error.js'
import type { StreamContext, VendorAdapter } from '../vendor-adapter.js'
import { NATIVE_DEFAULT_SAMPLE_RATE, nativeMessages, type StartMessage, type StopMessage } from './native-messages.js'

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
 * The gateway's own protocol: a JWT at the upgrade (the token's tenant_id claim is the tenant), a JSON start,
 * binary frames of raw PCM s16le, a JSON stop. The server acknowledges start and explains errors before closing.
 */
export function createNativeAdapter (): VendorAdapter {
  return {
    name: 'native',
    auth: ['jwt'],
    messages: nativeMessages,
    accept: ({ principal }) => ({ principal }),
    detect: (message) => (message.event === 'start' && 'interaction_id' in message ? 'yes' : 'no'),

    createDecoder (context: StreamContext) {
      const tenantId = 'tenantId' in context.principal ? context.principal.tenantId ?? null : null
      const decodeText = createJsonEventDecoder('native', nativeMessages, (event, message) => toInboundEvent(event, message, tenantId))
      return {
        decode (data, isBinary, withUnknownFields) {
          if (!isBinary) return decodeText(data, false, withUnknownFields)
          return { event: { kind: 'media', pcm: decodeAudio(() => checkWholeSamples(data)), vendorSeq: null, timestampMs: null } }
        },
        started: (call) => JSON.stringify({ event: 'started', interaction_id: call.interactionId }),
        rejected: (error: ProtocolError) => JSON.stringify({ event: 'error', code: ERROR_CODES[error.closeCode] ?? 'error', message: error.message })
      }
    }
  }
}

function toInboundEvent (event: string, message: Record<string, unknown>, tenantId: string | null): InboundEvent {
  if (event === 'stop') return { kind: 'stop', reason: (message as StopMessage).reason ?? null }
  const start = message as StartMessage
  return {
    kind: 'start',
    start: {
      callId: start.interaction_id,
      tenantId,
      streamId: null,
      sampleRate: start.sample_rate ?? NATIVE_DEFAULT_SAMPLE_RATE,
      declaredSampleRate: null,
      from: null,
      to: null,
      customParameters: start.metadata ?? {}
    }
  }
}
