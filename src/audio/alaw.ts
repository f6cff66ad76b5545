/** G.711 A-law ↔ linear PCM s16le, by table: one lookup per sample on the hot path. */

import { decodeByTable, encodeBySample } from './g711.js'

/** The largest magnitude of each segment, in the 13-bit domain A-law encodes (Sun's reference g711.c, seg_aend). */
const SEGMENT_ENDS = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff]

const DECODE = new Int16Array(256)
for (let byte = 0; byte < 256; byte++) {
  // Even bits are inverted on the wire (0x55), so an idle line is not a run of zeros.
  const a = byte ^ 0x55
  const segment = (a & 0x70) >> 4
  let magnitude = (a & 0x0f) << 4
  if (segment === 0) magnitude += 8
  else magnitude = (magnitude + 0x108) << (segment - 1)
  DECODE[byte] = (a & 0x80) !== 0 ? magnitude : -magnitude
}

/** A-law bytes to PCM s16le: twice as many bytes out. */
export function decodeAlaw (alaw: Buffer): Buffer {
  return decodeByTable(alaw, DECODE)
}

/** PCM s16le to A-law bytes (ITU-T G.711, as in Sun's reference g711.c). */
export function encodeAlaw (pcm: Buffer): Buffer {
  return encodeBySample(pcm, encodeSample)
}

function encodeSample (sample: number): number {
  let magnitude = sample >> 3
  let mask = 0xd5
  if (magnitude < 0) {
    // One's complement: -1 is the smallest negative step, as 0 is the smallest positive one.
    mask = 0x55
    magnitude = -magnitude - 1
  }
  const segment = SEGMENT_ENDS.findIndex((end) => magnitude <= end)
  if (segment === -1) return 0x7f ^ mask
  const mantissa = (magnitude >> (segment < 2 ? 1 : segment)) & 0x0f
  return ((segment << 4) | mantissa) ^ mask
}
