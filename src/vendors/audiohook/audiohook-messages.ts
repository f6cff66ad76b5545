import { Type, type TSchema } from '@sinclair/typebox'
import { CallId } from '../message-fields.js'

/**
 * The client's (Genesys Cloud's) text messages of the AudioHook protocol
 * (https://developer.genesys.cloud/devapps/audiohook/protocol-reference): JSON objects with `version` "2", a `type`,
 * the session `id`, the client's `seq` (1, 2, 3…), the last server `serverseq` it has seen, the stream `position`
 * (an ISO 8601 duration) and `parameters`. Audio comes in binary frames between them.
 */

/** `PT12.34S`: how the protocol writes positions and durations, in seconds. */
export const Duration = Type.String({ pattern: '^PT[0-9]{1,10}(\\.[0-9]{1,9})?S$' })

const Uuid = Type.String({ pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' })
const SequenceNumber = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })

function clientMessage<P extends TSchema> (type: string, parameters: P) {
  return Type.Object({
    version: Type.Literal('2'),
    type: Type.Literal(type),
    id: Uuid,
    seq: SequenceNumber,
    serverseq: SequenceNumber,
    position: Duration,
    parameters
  })
}

/** What the client offers: Genesys streams PCMU or L16 at 8 kHz, the channels `external` (customer) and `internal` (agent). */
export const MediaParameter = Type.Object({
  type: Type.String({ maxLength: 16 }),
  format: Type.String({ maxLength: 16 }),
  channels: Type.Array(Type.String({ maxLength: 16 }), { maxItems: 4 }),
  rate: Type.Integer({ minimum: 1 })
})

export const OpenMessage = clientMessage('open', Type.Object({
  organizationId: Uuid,
  conversationId: CallId,
  participant: Type.Optional(Type.Object({
    id: Type.Optional(Type.String({ maxLength: 64 })),
    ani: Type.Optional(Type.String({ maxLength: 64 })),
    aniName: Type.Optional(Type.String({ maxLength: 256 })),
    dnis: Type.Optional(Type.String({ maxLength: 64 }))
  })),
  media: Type.Array(MediaParameter, { minItems: 1, maxItems: 16 }),
  language: Type.Optional(Type.String({ maxLength: 32 })),
  customConfig: Type.Optional(Type.Record(Type.String(), Type.Unknown()))
}))

export const PingMessage = clientMessage('ping', Type.Object({ rtt: Type.Optional(Duration) }))
export const UpdateMessage = clientMessage('update', Type.Object({ language: Type.Optional(Type.String({ maxLength: 32 })) }))
/** The client paused its stream (its own pause, or the answer to the server's `pause`): no audio until `resumed`. */
export const PausedMessage = clientMessage('paused', Type.Object({}))
/** `start` the position where the pause ended, `discarded` the audio the pause left out. */
export const ResumedMessage = clientMessage('resumed', Type.Object({ start: Duration, discarded: Duration }))
/** Audio the client could not send (a backlog it dropped): from `start`, `discarded` long. */
export const DiscardedMessage = clientMessage('discarded', Type.Object({ start: Duration, discarded: Duration }))
export const ErrorMessage = clientMessage('error', Type.Object({
  code: Type.Integer(),
  message: Type.String({ maxLength: 1024 }),
  retryAfter: Type.Optional(Duration)
}))
export const CloseMessage = clientMessage('close', Type.Object({ reason: Type.String({ maxLength: 64 }) }))

export const audioHookMessages = {
  open: OpenMessage,
  ping: PingMessage,
  update: UpdateMessage,
  paused: PausedMessage,
  resumed: ResumedMessage,
  discarded: DiscardedMessage,
  error: ErrorMessage,
  close: CloseMessage
}
