const EQUALS = 61

/** Bytes of 16-bit mono PCM per millisecond at a sample rate. */
export function pcmBytesPerMs (sampleRate: number): number {
  return (sampleRate * 2) / 1000
}

export class AudioDecodeError extends Error {
  override name = 'AudioDecodeError'
}

/**
 * Decodes base64 (standard or URL-safe alphabet, padding optional), refusing anything else.
 * Node's decoder skips characters outside the alphabet instead of failing, so the decoded length is checked
 * against the length the text must produce: any stray character makes them differ.
 */
export function decodeBase64 (payload: string): Buffer {
  const pcm = Buffer.from(payload, 'base64')
  if (pcm.length !== base64Bytes(payload)) throw new AudioDecodeError('payload is not valid base64')
  return pcm
}

/**
 * decodeBase64 into `target` from its start, for a caller that owns a buffer to reuse: the bytes written, or -1
 * where decodeBase64 refuses the text (or `target` is too small for it). The same decoder and the same check.
 */
export function decodeBase64Into (payload: string, target: Buffer): number {
  const expected = base64Bytes(payload)
  if (expected < 0 || expected > target.length) return -1
  return target.write(payload, 0, 'base64') === expected ? expected : -1
}

/** The bytes base64 text of this length and padding decodes to; -1 for a length or padding no base64 has. */
function base64Bytes (payload: string): number {
  const length = payload.length
  let padding = 0
  if (length > 0 && payload.charCodeAt(length - 1) === EQUALS) {
    padding = length > 1 && payload.charCodeAt(length - 2) === EQUALS ? 2 : 1
  }
  if (length % 4 === 1 || (padding > 0 && length % 4 !== 0)) return -1
  return Math.floor(((length - padding) * 3) / 4)
}

/** Refuses audio that ends in half a 16-bit sample. */
export function checkWholeSamples (pcm: Buffer): Buffer {
  if (pcm.length % 2 !== 0) {
    throw new AudioDecodeError(`payload holds ${pcm.length} bytes, not a whole number of 16-bit samples`)
  }
  return pcm
}

/** Base64 PCM s16le, as Exotel sends it. */
export function decodeBase64Pcm (payload: string): Buffer {
  return checkWholeSamples(decodeBase64(payload))
}
