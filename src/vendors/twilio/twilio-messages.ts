import { Type } from '@sinclair/typebox'
import { AccountId, CallId, Counter, TrackName, TrackNames } from '../message-fields.js'

/**
 * Twilio Media Streams events (https://www.twilio.com/docs/voice/media-streams/websocket-messages, checked against
 * a logged session in https://github.com/twilio/media-streams): camelCase keys, base64 μ-law at 8 kHz, counters as
 * strings. Extra fields are allowed.
 */
const StreamSid = Type.Optional(Type.String({ maxLength: 256 }))

export const ConnectedMessage = Type.Object({
  event: Type.Literal('connected'),
  protocol: Type.Optional(Type.String()),
  version: Type.Optional(Type.String())
})

export const StartMessage = Type.Object({
  event: Type.Literal('start'),
  sequenceNumber: Type.Optional(Counter),
  streamSid: StreamSid,
  start: Type.Object({
    accountSid: AccountId,
    streamSid: Type.String({ maxLength: 256 }),
    callSid: CallId,
    /** ["inbound"], ["outbound"] or, with track="both_tracks", both. */
    tracks: Type.Optional(TrackNames),
    mediaFormat: Type.Optional(Type.Object({
      encoding: Type.Literal('audio/x-mulaw'),
      sampleRate: Type.Literal(8000),
      channels: Type.Optional(Type.Literal(1))
    })),
    customParameters: Type.Optional(Type.Record(Type.String(), Type.Unknown()))
  })
})

export const MediaMessage = Type.Object({
  event: Type.Literal('media'),
  sequenceNumber: Type.Optional(Counter),
  streamSid: StreamSid,
  media: Type.Object({
    track: Type.Optional(TrackName),
    chunk: Type.Optional(Counter),
    timestamp: Type.Optional(Counter),
    payload: Type.String()
  })
})

export const DtmfMessage = Type.Object({
  event: Type.Literal('dtmf'),
  sequenceNumber: Type.Optional(Counter),
  streamSid: StreamSid,
  dtmf: Type.Object({
    track: Type.Optional(Type.String()),
    digit: Type.String({ pattern: '^[0-9*#A-Da-d]$' })
  })
})

export const MarkMessage = Type.Object({
  event: Type.Literal('mark'),
  sequenceNumber: Type.Optional(Counter),
  streamSid: StreamSid,
  mark: Type.Object({ name: Type.String({ maxLength: 256 }) })
})

export const StopMessage = Type.Object({
  event: Type.Literal('stop'),
  sequenceNumber: Type.Optional(Counter),
  streamSid: StreamSid,
  stop: Type.Optional(Type.Object({
    accountSid: Type.Optional(Type.String()),
    callSid: Type.Optional(Type.String())
  }))
})

export const twilioMessages = {
  connected: ConnectedMessage,
  start: StartMessage,
  media: MediaMessage,
  dtmf: DtmfMessage,
  mark: MarkMessage,
  stop: StopMessage
}
