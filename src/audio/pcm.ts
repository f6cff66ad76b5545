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

/** Each byte's base64 value (standard and URL-safe alphabets), or -1 for any other byte, padding included. */
const BASE64_VALUES = new Int8Array(256).fill(-1)
for (const [index, char] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].entries()) BASE64_VALUES[char.charCodeAt(0)] = index
BASE64_VALUES['-'.charCodeAt(0)] = 62
BASE64_VALUES['_'.charCodeAt(0)] = 63

/**
 * The bytes the base64 text in data[start, end) decodes to, or -1 where this cannot vouch for the text: anything
 * but the alphabets and up to two trailing `=`, or a length decodeBase64 refuses. Where it vouches, decodeBase64
 * accepts the same text and decodes the same bytes as decodeBase64Into.
 */
export function base64Bytes (data: Buffer, start: number, end: number): number {
  let last = end
  if (last > start && data[last - 1] === EQUALS) last--
  if (last > start && data[last - 1] === EQUALS) last--
  const padding = end - last
  const length = end - start
  if (length % 4 === 1 || (padding > 0 && length % 4 !== 0)) return -1
  for (let i = start; i < last; i++) if (BASE64_VALUES[data[i]] < 0) return -1
  return Math.floor(((length - padding) * 3) / 4)
}

/** Decodes the text base64Bytes vouched for into target at offset, without a string in between. */
export function decodeBase64Into (data: Buffer, start: number, end: number, target: Buffer, offset: number): void {
  while (end > start && data[end - 1] === EQUALS) end--
  let out = offset
  let i = start
  for (const whole = start + ((end - start) & ~3); i < whole; i += 4) {
    const bits = (BASE64_VALUES[data[i]] << 18) | (BASE64_VALUES[data[i + 1]] << 12) | (BASE64_VALUES[data[i + 2]] << 6) | BASE64_VALUES[data[i + 3]]
    target[out++] = bits >>> 16
    target[out++] = (bits >>> 8) & 0xff
    target[out++] = bits & 0xff
  }
  // Two or three characters left: one or two bytes; the bits past them are dropped, as Node's decoder drops them.
  if (end - i >= 2) {
    const bits = (BASE64_VALUES[data[i]] << 18) | (BASE64_VALUES[data[i + 1]] << 12) | (end - i === 3 ? BASE64_VALUES[data[i + 2]] << 6 : 0)
    target[out++] = bits >>> 16
    if (end - i === 3) target[out] = (bits >>> 8) & 0xff
  }
}
