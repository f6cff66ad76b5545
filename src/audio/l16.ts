import { checkWholeSamples } from './pcm.js'

/*
 * L16 as RTP carries it: 16-bit linear PCM in network byte order, big-endian (RFC 3551 §4.5.11), the
 * byte-swapped twin of the gateway's s16le.
 */

/** L16 bytes to PCM s16le, refusing half a sample. */
export function decodeL16 (l16: Buffer): Buffer {
  return Buffer.from(checkWholeSamples(l16)).swap16()
}

/** PCM s16le to L16 bytes; a copy, since `pcm` may be a view of a buffer still in use. */
export function encodeL16 (pcm: Buffer): Buffer {
  return Buffer.from(pcm).swap16()
}
