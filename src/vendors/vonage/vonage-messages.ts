import { Type } from '@sinclair/typebox'
import { AccountId, CallId, Counter } from '../message-fields.js'

/**
 * The text messages of the Vonage Voice API WebSocket (https://developer.vonage.com/en/voice/voice-api/concepts/websockets):
 * JSON objects whose `event` starts with `websocket:`; the caller's audio comes in binary frames between them.
 * Extra fields are allowed: websocket:connected carries the NCCO endpoint's `headers` at its top level.
 */

/**
 * The first message. Vonage adds nothing of its own but the audio format: the call id, the account and the numbers
 * are the operator's, set in the `headers` of the NCCO websocket endpoint (README, "Vonage"). `call_id` is required,
 * but checked by the mapping, so a missing one is refused with a message that says where to set it.
 */
export const ConnectedMessage = Type.Object({
  event: Type.Literal('websocket:connected'),
  'content-type': Type.String({ maxLength: 64 }),
  call_id: Type.Optional(CallId),
  account_id: Type.Optional(AccountId),
  from: Type.Optional(Type.String({ maxLength: 64 })),
  to: Type.Optional(Type.String({ maxLength: 64 }))
})

/** A key press, one digit per message: `{"event":"websocket:dtmf","digit":"5","duration":260}`. */
export const DtmfMessage = Type.Object({
  event: Type.Literal('websocket:dtmf'),
  digit: Type.String({ pattern: '^[0-9*#A-Da-d]$' }),
  duration: Type.Optional(Counter)
})

/**
 * The answer to a `notify` action once the audio sent before it has played, echoing its payload. The gateway's
 * marks are notify actions with `payload.name`, and nothing else on the socket sends one.
 */
export const NotifyMessage = Type.Object({
  event: Type.Literal('websocket:notify'),
  payload: Type.Object({ name: Type.String({ maxLength: 256 }) })
})

/** websocket:cleared, the answer to a clear, has no schema: it passes as an unknown event (a debug line). */
export const vonageMessages = {
  'websocket:connected': ConnectedMessage,
  'websocket:dtmf': DtmfMessage,
  'websocket:notify': NotifyMessage
}
