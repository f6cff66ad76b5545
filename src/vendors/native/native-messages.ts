import { Type } from '@sinclair/typebox'
import { CallId } from '../message-fields.js'

export const NATIVE_SAMPLE_RATES = [8000, 16000, 24000, 48000] as const
export const NATIVE_DEFAULT_SAMPLE_RATE = 24000

/** The gateway's own protocol: JSON control messages, raw PCM s16le in binary frames (docs/native-protocol.md). */
export const StartMessage = Type.Object({
  event: Type.Literal('start'),
  interaction_id: CallId,
  sample_rate: Type.Optional(Type.Union(NATIVE_SAMPLE_RATES.map((rate) => Type.Literal(rate)))),
  encoding: Type.Optional(Type.Literal('pcm_s16le')),
  channels: Type.Optional(Type.Literal(1)),
  metadata: Type.Optional(Type.Record(Type.String(), Type.Unknown()))
})

export const StopMessage = Type.Object({
  event: Type.Literal('stop'),
  reason: Type.Optional(Type.String({ maxLength: 128 }))
})

export const nativeMessages = { start: StartMessage, stop: StopMessage }
