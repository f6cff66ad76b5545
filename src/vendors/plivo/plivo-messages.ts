import { Type } from '@sinclair/typebox'
import { AccountId, CallId, Counter } from '../message-fields.js'

/**
 * Plivo Audio Streams events, from Plivo's protocol reference
 * (https://plivo.com/docs/voice-agents/audio-streaming/concepts/audio-streaming-reference): camelCase keys, counters as
 * numbers, base64 audio in the encoding the start's `mediaFormat` names. Extra fields are allowed.
 */
const StreamId = Type.Optional(Type.String({ maxLength: 256 }))

/** The legs a stream carries, as `<Stream audioTrack>` chose them: the start lists them, each media message names one. */
const TrackName = Type.Union([Type.Literal('inbound'), Type.Literal('outbound')])

/** `extraHeaders` of `<Stream>` (at most 512 bytes at Plivo), echoed as one string: `userId=12345;sessionId=abc-xyz`. */
const ExtraHeaders = Type.Optional(Type.String({ maxLength: 2048 }))

export const StartMessage = Type.Object({
  event: Type.Literal('start'),
  sequenceNumber: Type.Optional(Counter),
  start: Type.Object({
    callId: CallId,
    streamId: Type.String({ minLength: 1, maxLength: 256 }),
    accountId: AccountId,
    tracks: Type.Optional(Type.Array(TrackName, { minItems: 1, maxItems: 2, uniqueItems: true })),
    // Checked against the encodings the gateway decodes in the mapping, which refuses the others with 1003.
    mediaFormat: Type.Object({
      encoding: Type.String({ maxLength: 64 }),
      sampleRate: Type.Integer({ minimum: 1, maximum: 192_000 })
    })
  }),
  extra_headers: ExtraHeaders
})

export const MediaMessage = Type.Object({
  event: Type.Literal('media'),
  sequenceNumber: Type.Optional(Counter),
  streamId: StreamId,
  media: Type.Object({
    track: Type.Optional(TrackName),
    /** Unix time in milliseconds, as a string. */
    timestamp: Type.Optional(Counter),
    chunk: Type.Optional(Counter),
    payload: Type.String()
  })
})

export const DtmfMessage = Type.Object({
  event: Type.Literal('dtmf'),
  sequenceNumber: Type.Optional(Counter),
  streamId: StreamId,
  dtmf: Type.Object({
    track: Type.Optional(Type.String({ maxLength: 32 })),
    digit: Type.String({ pattern: '^[0-9*#A-Da-d]$' }),
    timestamp: Type.Optional(Counter)
  })
})

/** The answer to a `checkpoint` once the audio before it has played. */
export const PlayedStreamMessage = Type.Object({
  event: Type.Literal('playedStream'),
  sequenceNumber: Type.Optional(Counter),
  streamId: StreamId,
  name: Type.String({ maxLength: 256 })
})

/**
 * The same answer as one support article names it
 * (https://support.plivo.com/hc/en-us/articles/32800564168345-How-do-I-know-if-the-buffered-audio-is-played).
 */
export const PlayedMessage = Type.Object({ ...PlayedStreamMessage.properties, event: Type.Literal('played') })

/** The answer to a `clearAudio`. */
export const ClearedAudioMessage = Type.Object({
  event: Type.Literal('clearedAudio'),
  sequenceNumber: Type.Optional(Counter),
  streamId: StreamId
})

/**
 * Not in the protocol reference, where the stream ends with the socket, but in Plivo's Java stream SDK
 * (https://github.com/plivo/plivo-stream-sdk-java, event/StopEvent.java).
 */
export const StopMessage = Type.Object({
  event: Type.Literal('stop'),
  sequenceNumber: Type.Optional(Counter),
  streamId: StreamId,
  reason: Type.Optional(Type.String({ maxLength: 128 }))
})

export const plivoMessages = {
  start: StartMessage,
  media: MediaMessage,
  dtmf: DtmfMessage,
  playedStream: PlayedStreamMessage,
  played: PlayedMessage,
  clearedAudio: ClearedAudioMessage,
  stop: StopMessage
}
