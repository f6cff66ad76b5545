/**
 * The Exotel messages the benchmark clients send, shaped as Exotel sends them
 * (https://developer.exotel.com/docs/agentstream/websocket-protocol). Media is built without JSON.stringify, so the
 * clients stay cheap: mediaMessage as a string per frame (bench/instructions.ts), MediaFrames as one Buffer per call,
 * patched per frame (bench/load-generator.ts).
 */

/** connected, then start: what opens a call. */
export function openingMessages (callSid: string, streamSid: string, sampleRate: number): string[] {
  return [
    JSON.stringify({ event: 'connected' }),
    JSON.stringify({ event: 'start', sequence_number: '1', stream_sid: streamSid, start: { stream_sid: streamSid, call_sid: callSid, account_sid: 'ACbench', media_format: { encoding: 'audio/x-raw', sample_rate: String(sampleRate), bit_rate: '16' } } })
  ]
}

/** Media frame k (from 0) of a call: sequence_number k + 2 (start was 1), chunk k + 1. */
export function mediaMessage (streamSid: string, k: number, frameMs: number, payloadBase64: string): string {
  return `{"event":"media","sequence_number":"${k + 2}","stream_sid":"${streamSid}","media":{"chunk":"${k + 1}","timestamp":"${k * frameMs}","payload":"${payloadBase64}"}}`
}

const BASE64 = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/')

/**
 * One call's media messages as one Buffer, built once and patched in place per frame: the sequence, chunk and
 * timestamp digits, and the base64 of the payload's first 18 bytes (which hold the 16-byte stamp); the rest of the
 * payload is the same in every frame. The counters are zero-padded to a fixed width (`digits`): the schema's
 * `^[0-9]{1,15}$` accepts them, and the gateway reads them with Number(), so 000012 is 12. The bytes are
 * mediaMessage's but for that padding.
 */
export class MediaFrames {
  /** Base64 holds 3 bytes in 4 characters: the first HEAD_BYTES of the PCM are the first HEAD_CHARS of the payload. */
  static readonly HEAD_BYTES = 18
  static readonly HEAD_CHARS = 24
  readonly #frameMs: number
  readonly #digits: number
  readonly #sequenceAt: number
  readonly #chunkAt: number
  readonly #timestampAt: number
  readonly #payloadAt: number
  #message: Buffer

  /** `payloadBase64` is the whole payload; its first HEAD_CHARS characters are overwritten by every frame. */
  constructor (streamSid: string, frameMs: number, digits: number, payloadBase64: string) {
    const zeros = '0'.repeat(digits)
    const text = `{"event":"media","sequence_number":"${zeros}","stream_sid":"${streamSid}","media":{"chunk":"${zeros}","timestamp":"${zeros}","payload":"${payloadBase64}"}}`
    const after = (key: string): number => text.indexOf(`"${key}":"`) + key.length + 4
    this.#frameMs = frameMs
    this.#digits = digits
    this.#sequenceAt = after('sequence_number')
    this.#chunkAt = after('chunk')
    this.#timestampAt = after('timestamp')
    this.#payloadAt = after('payload')
    this.#message = Buffer.from(text, 'latin1')
  }

  /**
   * Media frame k (from 0), as mediaMessage numbers it, with `head` (HEAD_BYTES of PCM) at the payload's start.
   * `copy`: the previous frame's Buffer may still be queued on the socket, so write this one into a fresh copy.
   */
  frame (k: number, head: Buffer, copy: boolean): Buffer {
    if (copy) this.#message = Buffer.from(this.#message)
    const message = this.#message
    this.#writeDigits(this.#sequenceAt, k + 2)
    this.#writeDigits(this.#chunkAt, k + 1)
    this.#writeDigits(this.#timestampAt, k * this.#frameMs)
    for (let i = 0, at = this.#payloadAt; i < MediaFrames.HEAD_BYTES; i += 3, at += 4) {
      const bits = (head[i] << 16) | (head[i + 1] << 8) | head[i + 2]
      message[at] = BASE64[bits >> 18]
      message[at + 1] = BASE64[(bits >> 12) & 63]
      message[at + 2] = BASE64[(bits >> 6) & 63]
      message[at + 3] = BASE64[bits & 63]
    }
    return message
  }

  #writeDigits (at: number, value: number): void {
    if (value >= 10 ** this.#digits) throw new Error(`${value} has more than ${this.#digits} digits`)
    for (let i = at + this.#digits - 1; i >= at; i--) {
      this.#message[i] = 0x30 + (value % 10)
      value = Math.floor(value / 10)
    }
  }
}
