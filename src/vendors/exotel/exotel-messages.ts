import { Type } from '@sinclair/typebox'
import { AccountId, CallId as CallSid, Counter } from '../message-fields.js'

/**
 * Every Exotel Stream / Voicebot event (https://developer.exotel.com/docs/agentstream/websocket-protocol), one
 * schema for the one-way and two-way applets. Counters come as numbers or numeric strings depending on the page of
 * Exotel's docs, and extra fields are allowed, because "exact field names can vary slightly by applet".
 */
const OptionalText = Type.Optional(Type.Union([Type.String({ maxLength: 256 }), Type.Null()]))
const StreamSid = Type.Optional(Type.String({ maxLength: 256 }))

export const ConnectedMessage = Type.Object({
  event: Type.Literal('connected')
})

export const StartMessage = Type.Object({
  event: Type.Literal('start'),
  sequence_number: Type.Optional(Counter),
  stream_sid: StreamSid,
  streamSid: StreamSid,
  start: Type.Object({
    stream_sid: StreamSid,
    streamSid: StreamSid,
    call_sid: CallSid,
    account_sid: Type.Optional(AccountId),
    from: OptionalText,
    to: OptionalText,
    custom_parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    media_format: Type.Optional(Type.Object({
      // "8000", 8000 and "8000Hz" are all seen in Exotel's docs; only the number matters.
      sample_rate: Type.Optional(Type.Union([Type.Integer(), Type.String({ maxLength: 16 })]))
    }))
  })
})

export const MediaMessage = Type.Object({
  event: Type.Literal('media'),
  sequence_number: Type.Optional(Counter),
  stream_sid: StreamSid,
  media: Type.Object({
    chunk: Type.Optional(Counter),
    timestamp: Type.Optional(Counter),
    payload: Type.String()
  })
})

export const DtmfMessage = Type.Object({
  event: Type.Literal('dtmf'),
  sequence_number: Type.Optional(Counter),
  stream_sid: StreamSid,
  dtmf: Type.Object({
    digit: Type.String({ pattern: '^[0-9*#A-Da-d]$' }),
    duration: Type.Optional(Counter)
  })
})

export const MarkMessage = Type.Object({
  event: Type.Literal('mark'),
  sequence_number: Type.Optional(Counter),
  stream_sid: StreamSid,
  mark: Type.Object({
    name: Type.String({ maxLength: 256 })
  })
})

export const StopMessage = Type.Object({
  event: Type.Literal('stop'),
  sequence_number: Type.Optional(Counter),
  stream_sid: StreamSid,
  stop: Type.Optional(Type.Object({
    call_sid: Type.Optional(Type.String()),
    account_sid: Type.Optional(Type.String()),
    reason: Type.Optional(Type.String({ maxLength: 128 }))
  }))
})

export const exotelMessages = {
  connected: ConnectedMessage,
  start: StartMessage,
  media: MediaMessage,
  dtmf: DtmfMessage,
  mark: MarkMessage,
  stop: StopMessage
}
