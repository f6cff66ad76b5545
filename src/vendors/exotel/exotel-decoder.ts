import { AudioDecodeError, decodeBase64Pcm } from '../../audio/pcm.js'
import type { InboundEvent } from '../inbound-event.js'
import { CloseCode, ProtocolError } from '../protocol-error.js'
import { exotelCheckers, isExotelEvent, unknownFields, type ExotelEvent, type StartMessage } from './exotel-messages.js'

export interface DecodedMessage {
  event: InboundEvent
  /** Set only when asked for, since it walks the whole message. */
  unknownFields?: string[]
}

/**
 * Turns one Exotel text message into a normalized event, or throws a ProtocolError that says which close code
 * fits and why. It holds no state: ordering rules live in the stream session, which all vendors share.
 */
export function decodeExotelMessage (text: string, withUnknownFields = false): DecodedMessage {
  const message = parseObject(text)
  const event = message.event
  if (typeof event !== 'string') throw new ProtocolError(CloseCode.INVALID_PAYLOAD, 'message has no string "event" field')
  if (!isExotelEvent(event)) return { event: { kind: 'unknown', event } }
  checkShape(event, message)
  const decoded: DecodedMessage = { event: toInboundEvent(event, message) }
  if (withUnknownFields) decoded.unknownFields = unknownFields(event, message)
  return decoded
}

function parseObject (text: string): Record<string, unknown> {
  let message: unknown
  try {
    message = JSON.parse(text)
  } catch {
    throw new ProtocolError(CloseCode.INVALID_PAYLOAD, 'message is not JSON')
  }
  if (typeof message !== 'object' || message === null || Array.isArray(message)) {
    throw new ProtocolError(CloseCode.INVALID_PAYLOAD, 'message is not a JSON object')
  }
  return message as Record<string, unknown>
}

function checkShape (event: ExotelEvent, message: Record<string, unknown>): void {
  const checker = exotelCheckers[event]
  if (checker.Check(message)) return
  const error = checker.Errors(message).First()
  const where = error === undefined || error.path === '' ? '' : ` at ${error.path}`
  throw new ProtocolError(CloseCode.INVALID_PAYLOAD, `invalid ${event} message${where}: ${error?.message ?? 'does not match the schema'}`)
}

// Each branch's message has passed its compiled schema, so the casts below only restate what Check proved.
function toInboundEvent (event: ExotelEvent, message: Record<string, unknown>): InboundEvent {
  switch (event) {
    case 'connected':
      return { kind: 'connected' }
    case 'start':
      return toStart(message as StartMessage)
    case 'media': {
      const { sequence_number: sequence, media } = message as { sequence_number?: number | string, media: { timestamp?: number | string, payload: string } }
      return { kind: 'media', pcm: decodePayload(media.payload), vendorSeq: toNumber(sequence), timestampMs: toNumber(media.timestamp) }
    }
    case 'dtmf': {
      const { dtmf } = message as { dtmf: { digit: string, duration?: number | string } }
      return { kind: 'dtmf', digit: dtmf.digit, durationMs: toNumber(dtmf.duration) }
    }
    case 'mark':
      return { kind: 'mark', name: (message as { mark: { name: string } }).mark.name }
    case 'stop':
      return { kind: 'stop', reason: (message as { stop?: { reason?: string } }).stop?.reason ?? null }
  }
}

function toStart (message: StartMessage): InboundEvent {
  const { start } = message
  return {
    kind: 'start',
    start: {
      callId: start.call_sid,
      tenantId: start.account_sid ?? null,
      streamId: message.stream_sid ?? start.stream_sid ?? message.streamSid ?? start.streamSid ?? null,
      declaredSampleRate: parseRate(start.media_format?.sample_rate),
      from: start.from ?? null,
      to: start.to ?? null,
      customParameters: start.custom_parameters ?? {}
    }
  }
}

function decodePayload (payload: string): Buffer {
  try {
    return decodeBase64Pcm(payload)
  } catch (err) {
    if (err instanceof AudioDecodeError) throw new ProtocolError(CloseCode.INVALID_PAYLOAD, err.message)
    throw err
  }
}

function toNumber (value: number | string | undefined): number | null {
  return value === undefined ? null : Number(value)
}

/** "8000", 8000 and "8000Hz" all mean 8000; anything without leading digits means "not stated". */
function parseRate (value: number | string | undefined): number | null {
  if (value === undefined) return null
  const rate = typeof value === 'number' ? value : Number.parseInt(value, 10)
  return Number.isFinite(rate) ? rate : null
}
