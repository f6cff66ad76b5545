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
  const length = payload.length
  let padding = 0
  if (length > 0 && payload.charCodeAt(length - 1) === EQUALS) {
    padding = length > 1 && payload.charCodeAt(length - 2) === EQUALS ? 2 : 1
  }
  const pcm = Buffer.from(payload, 'base64')
  if (length % 4 === 1 || (padding > 0 && length % 4 !== 0) || pcm.length !== Math.floor(((length - padding) * 3) / 4)) {
    throw new AudioDecodeError('payload is not valid base64')
  }
  return pcm
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
