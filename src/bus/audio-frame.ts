import type { Track } from '../track.js'

/** The header that precedes every audio message's PCM (docs/redis-contract.md, "Audio"). */
export interface AudioFrameHeader {
  interaction_id: string
  tenant_id: string | null
  seq: number
  vendor_seq: number | null
  timestamp_ms: number
  sample_rate: number
  encoding: 'pcm_s16le'
  channels: 1
  /** Only in a call with two tracks: the frame's (docs/redis-contract.md, "Tracks"). */
  track?: Track
}

const LENGTH_BYTES = 4

/** What a track's header says the same in every frame. */
export type FixedHeader = Pick<AudioFrameHeader, 'interaction_id' | 'tenant_id' | 'sample_rate' | 'encoding' | 'channels' | 'track'>

/**
 * The header's JSON, in the contract's order, is these three pieces around the per-frame numbers: one layout for
 * encodeAudioFrame and AudioFrameEncoder, so the two write the same bytes.
 */
const headJson = (fixed: FixedHeader): string => `{"interaction_id":${JSON.stringify(fixed.interaction_id)},"tenant_id":${JSON.stringify(fixed.tenant_id)},"seq":`
const VENDOR_SEQ_JSON = ',"vendor_seq":'
const TIMESTAMP_JSON = ',"timestamp_ms":'
const tailJson = (fixed: FixedHeader): string =>
  `,"sample_rate":${jsonNumber(fixed.sample_rate)},"encoding":"${fixed.encoding}","channels":${fixed.channels}${fixed.track === undefined ? '' : `,"track":"${fixed.track}"`}}`

/**
 * Encodes one audio message: a 4-byte big-endian header length N, N bytes of UTF-8 JSON, then the PCM. The JSON
 * is written field by field, the bytes JSON.stringify would give, without walking an object per frame.
 */
export function encodeAudioFrame (header: AudioFrameHeader, pcm: Buffer): Buffer {
  const json = `${headJson(header)}${jsonNumber(header.seq)}${VENDOR_SEQ_JSON}${jsonNumber(header.vendor_seq)}${TIMESTAMP_JSON}${jsonNumber(header.timestamp_ms)}${tailJson(header)}`
  const headerBytes = Buffer.byteLength(json)
  const message = Buffer.allocUnsafe(LENGTH_BYTES + headerBytes + pcm.length)
  message.writeUInt32BE(headerBytes, 0)
  message.write(json, LENGTH_BYTES, 'utf8')
  pcm.copy(message, LENGTH_BYTES + headerBytes)
  return message
}

const CRLF = Buffer.from('\r\n')

/**
 * One track's audio messages, with the header encoded once when the call starts: each frame writes only its seq,
 * vendor_seq and timestamp_ms between the fixed bytes, digit by digit, with no string in between. The message bytes
 * are encodeAudioFrame's (test/fast-media.test.ts compares them).
 *
 * With a `command`, the message goes out inside the Redis command that publishes it, in the same buffer: the
 * command's bytes up to its last argument's `$`, then the message as that RESP bulk string (`<length>\r\n<message>\r\n`).
 * Redis then gets the buffer as it is, with no copy on the way.
 */
export class AudioFrameEncoder {
  readonly #command: Buffer | null
  readonly #head: Buffer
  readonly #vendorSeq = Buffer.from(VENDOR_SEQ_JSON)
  readonly #timestamp = Buffer.from(TIMESTAMP_JSON)
  readonly #tail: Buffer
  readonly #fixedBytes: number

  /** Bytes after the PCM: the bulk string's CRLF inside a command, else none. */
  readonly trailerBytes: number

  constructor (fixed: FixedHeader, command: Buffer | null = null) {
    this.#command = command
    this.trailerBytes = command === null ? 0 : CRLF.length
    this.#head = Buffer.from(headJson(fixed))
    this.#tail = Buffer.from(tailJson(fixed))
    this.#fixedBytes = this.#head.length + this.#vendorSeq.length + this.#timestamp.length + this.#tail.length
  }

  /**
   * A message with its header written and room for `pcmBytes` of PCM, which goes at `length - trailerBytes -
   * pcmBytes`; inside its command when the encoder has one.
   */
  frame (seq: number, vendorSeq: number | null, timestampMs: number, pcmBytes: number): Buffer {
    const headerBytes = this.#fixedBytes + numberBytes(seq) + numberBytes(vendorSeq) + numberBytes(timestampMs)
    const messageBytes = LENGTH_BYTES + headerBytes + pcmBytes
    const command = this.#command
    const envelope = command === null ? 0 : command.length + numberBytes(messageBytes) + 2 * CRLF.length
    const message = Buffer.allocUnsafe(envelope + messageBytes)
    let at = 0
    if (command !== null) {
      at = writeNumber(message, command.copy(message, 0), messageBytes)
      at += CRLF.copy(message, at)
      CRLF.copy(message, message.length - CRLF.length)
    }
    message.writeUInt32BE(headerBytes, at)
    at += LENGTH_BYTES
    at += this.#head.copy(message, at)
    at = writeNumber(message, at, seq)
    at += this.#vendorSeq.copy(message, at)
    at = writeNumber(message, at, vendorSeq)
    at += this.#timestamp.copy(message, at)
    at = writeNumber(message, at, timestampMs)
    this.#tail.copy(message, at)
    return message
  }
}

/** As JSON.stringify writes a number: null for null, NaN and the infinities. */
function jsonNumber (value: number | null): number | null {
  return value !== null && Number.isFinite(value) ? value : null
}

const NULL_BYTES = 4

/** Bytes a number takes in JSON: counted digit by digit for the counters frames carry, otherwise through a string. */
function numberBytes (value: number | null): number {
  if (value === null) return NULL_BYTES
  if (Number.isSafeInteger(value) && value >= 0) {
    let digits = 1
    for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) digits++
    return digits
  }
  return String(jsonNumber(value)).length
}

function writeNumber (message: Buffer, at: number, value: number | null): number {
  if (value !== null && Number.isSafeInteger(value) && value >= 0) {
    const end = at + numberBytes(value)
    let rest = value
    for (let i = end - 1; i >= at; i--) {
      message[i] = 0x30 + (rest % 10)
      rest = Math.floor(rest / 10)
    }
    return end
  }
  return at + message.write(String(jsonNumber(value)), at, 'latin1')
}

export function decodeAudioFrame (message: Buffer): { header: AudioFrameHeader, pcm: Buffer } {
  if (message.length < LENGTH_BYTES) throw new Error('audio message shorter than its length prefix')
  const headerBytes = message.readUInt32BE(0)
  const pcmStart = LENGTH_BYTES + headerBytes
  if (pcmStart > message.length) throw new Error('audio message header length runs past the message')
  const header = JSON.parse(message.toString('utf8', LENGTH_BYTES, pcmStart)) as AudioFrameHeader
  return { header, pcm: message.subarray(pcmStart) }
}
