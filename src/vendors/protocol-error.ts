/** WebSocket close codes the gateway uses (RFC 6455 §7.4.1). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011
} as const

/** A message the gateway refuses; the connection is closed with closeCode and the message as reason. */
export class ProtocolError extends Error {
  override name = 'ProtocolError'
  readonly closeCode: number

  constructor (closeCode: number, message: string) {
    super(message)
    this.closeCode = closeCode
  }
}
