/** G.711 μ-law ↔ linear PCM s16le, by table: one lookup per sample on the hot path. */

import { decodeByTable, encodeBySample } from './g711.js'

const BIAS = 0x84
const CLIP = 32635

const DECODE = new Int16Array(256)
for (let byte = 0; byte < 256; byte++) {
  const u = ~byte & 0xff
  const exponent = (u >> 4) & 0x07
  const magnitude = ((((u & 0x0f) << 3) + BIAS) << exponent) - BIAS
  DECODE[byte] = (u & 0x80) !== 0 ? -magnitude : magnitude
}

/** μ-law bytes to PCM s16le: twice as many bytes out. */
export function decodeMulaw (mulaw: Buffer): Buffer {
  return decodeByTable(mulaw, DECODE)
}

/** PCM s16le to μ-law bytes (ITU-T G.711, as in Sun's reference g711.c). */
export function encodeMulaw (pcm: Buffer): Buffer {
  return encodeBySample(pcm, encodeSample)
}

function encodeSample (sample: number): number {
  const sign = sample < 0 ? 0x80 : 0
  let magnitude = Math.min(sign !== 0 ? -sample : sample, CLIP) + BIAS
  let exponent = 7
  for (let mask = 0x4000; (magnitude & mask) === 0 && exponent > 0; mask >>= 1) exponent--
  const mantissa = (magnitude >> (exponent + 3)) & 0x0f
  magnitude = sign | (exponent << 4) | mantissa
  return ~magnitude & 0xff
}
