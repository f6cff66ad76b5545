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

/**
 * Encodes one audio message: a 4-byte big-endian header length N, N bytes of UTF-8 JSON, then the PCM. The JSON
 * is written field by field in the contract's order, the bytes JSON.stringify would give, without walking an
 * object per frame.
 */
export function encodeAudioFrame (header: AudioFrameHeader, pcm: Buffer): Buffer {
  const json = `{"interaction_id":${JSON.stringify(header.interaction_id)},"tenant_id":${JSON.stringify(header.tenant_id)},"seq":${jsonNumber(header.seq)},"vendor_seq":${jsonNumber(header.vendor_seq)},"timestamp_ms":${jsonNumber(header.timestamp_ms)},"sample_rate":${jsonNumber(header.sample_rate)},"encoding":"${header.encoding}","channels":${header.channels}${header.track === undefined ? '' : `,"track":"${header.track}"`}}`
  const headerBytes = Buffer.byteLength(json)
  const message = Buffer.allocUnsafe(LENGTH_BYTES + headerBytes + pcm.length)
  message.writeUInt32BE(headerBytes, 0)
  message.write(json, LENGTH_BYTES, 'utf8')
  pcm.copy(message, LENGTH_BYTES + headerBytes)
  return message
}

/** As JSON.stringify writes a number: null for null, NaN and the infinities. */
function jsonNumber (value: number | null): number | null {
  return value !== null && Number.isFinite(value) ? value : null
}

export function decodeAudioFrame (message: Buffer): { header: AudioFrameHeader, pcm: Buffer } {
  if (message.length < LENGTH_BYTES) throw new Error('audio message shorter than its length prefix')
  const headerBytes = message.readUInt32BE(0)
  const pcmStart = LENGTH_BYTES + headerBytes
  if (pcmStart > message.length) throw new Error('audio message header length runs past the message')
  const header = JSON.parse(message.toString('utf8', LENGTH_BYTES, pcmStart)) as AudioFrameHeader
  return { header, pcm: message.subarray(pcmStart) }
}
