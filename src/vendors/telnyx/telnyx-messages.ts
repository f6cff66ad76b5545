import { Type } from '@sinclair/typebox'
import { AccountId, CallId, Counter } from '../message-fields.js'

/**
 * Telnyx Media Streaming events (https://developers.telnyx.com/docs/voice/programmable-voice/media-streaming, and the
 * AsyncAPI at https://developers.telnyx.com/api-reference/websockets/stream-call-media-over-websocket): snake_case
 * keys, counters as strings, base64 RTP payloads (no headers) in the codec the start names. Extra fields are allowed.
 */
const StreamId = Type.Optional(Type.String({ maxLength: 256 }))
const OptionalText = Type.Optional(Type.Union([Type.String({ maxLength: 256 }), Type.Null()]))

/** The header's name, and the field of `connected` that repeats it when a streaming auth token is configured. */
export const TELNYX_TOKEN_HEADER = 'x-telnyx-streaming-auth-token'

export const ConnectedMessage = Type.Object({
  event: Type.Literal('connected'),
  version: Type.Optional(Type.String({ maxLength: 32 })),
  connected: Type.Optional(Type.Object({
    [TELNYX_TOKEN_HEADER]: Type.Optional(Type.String({ maxLength: 4096 }))
  }))
})

export const StartMessage = Type.Object({
  event: Type.Literal('start'),
  sequence_number: Type.Optional(Counter),
  stream_id: StreamId,
  start: Type.Object({
    user_id: Type.Optional(AccountId),
    call_control_id: Type.Optional(Type.String({ maxLength: 256 })),
    // A UUID: the call id. call_control_id is an opaque token whose alphabet Telnyx does not state.
    call_session_id: CallId,
    from: OptionalText,
    to: OptionalText,
    tags: Type.Optional(Type.Array(Type.String({ maxLength: 256 }), { maxItems: 64 })),
    client_state: Type.Optional(Type.Union([Type.String({ maxLength: 4096 }), Type.Null()])),
    custom_parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    media_format: Type.Object({
      // PCMU, PCMA, G722, OPUS, AMR-WB or L16 (stream_codec); older docs write audio/x-mulaw.
      encoding: Type.String({ maxLength: 32 }),
      sample_rate: Type.Integer({ minimum: 1 }),
      channels: Type.Optional(Type.Literal(1))
    })
  })
})

export const MediaMessage = Type.Object({
  event: Type.Literal('media'),
  sequence_number: Type.Optional(Counter),
  stream_id: StreamId,
  media: Type.Object({
    track: Type.Optional(Type.Union([Type.Literal('inbound'), Type.Literal('outbound')])),
    chunk: Type.Optional(Counter),
    timestamp: Type.Optional(Counter),
    payload: Type.String()
  })
})

export const DtmfMessage = Type.Object({
  event: Type.Literal('dtmf'),
  sequence_number: Type.Optional(Counter),
  stream_id: StreamId,
  occurred_at: Type.Optional(Type.String({ maxLength: 64 })),
  dtmf: Type.Object({
    digit: Type.String({ pattern: '^[0-9*#A-Da-d]$' })
  })
})

export const MarkMessage = Type.Object({
  event: Type.Literal('mark'),
  sequence_number: Type.Optional(Counter),
  stream_id: StreamId,
  mark: Type.Object({ name: Type.String({ maxLength: 256 }) })
})

export const StopMessage = Type.Object({
  event: Type.Literal('stop'),
  sequence_number: Type.Optional(Counter),
  stream_id: StreamId,
  stop: Type.Optional(Type.Object({
    user_id: Type.Optional(Type.String()),
    call_control_id: Type.Optional(Type.String())
  }))
})

export const ErrorMessage = Type.Object({
  event: Type.Literal('error'),
  stream_id: StreamId,
  payload: Type.Object({
    code: Type.Optional(Type.Union([Type.Integer(), Type.String({ maxLength: 64 })])),
    title: Type.Optional(Type.String({ maxLength: 256 })),
    detail: Type.Optional(Type.String({ maxLength: 1024 }))
  })
})

export const telnyxMessages = {
  connected: ConnectedMessage,
  start: StartMessage,
  media: MediaMessage,
  dtmf: DtmfMessage,
  mark: MarkMessage,
  stop: StopMessage,
  error: ErrorMessage
}
