/** RIFF/WAVE, 16-bit PCM: what the simulator reads and the recorder writes. */
export interface Wav {
  sampleRate: number
  channels: number
  /** PCM s16le, interleaved when channels > 1. */
  pcm: Buffer
}

export const WAV_HEADER_BYTES = 44

export function readWav (file: Buffer): Wav {
  if (file.length < 12 || file.toString('ascii', 0, 4) !== 'RIFF' || file.toString('ascii', 8, 12) !== 'WAVE') {
    throw new Error('not a RIFF/WAVE file')
  }
  let format: { channels: number, sampleRate: number, bits: number, tag: number } | null = null
  for (let offset = 12; offset + 8 <= file.length;) {
    const id = file.toString('ascii', offset, offset + 4)
    const size = file.readUInt32LE(offset + 4)
    const body = offset + 8
    if (id === 'fmt ') {
      format = { tag: file.readUInt16LE(body), channels: file.readUInt16LE(body + 2), sampleRate: file.readUInt32LE(body + 4), bits: file.readUInt16LE(body + 14) }
    } else if (id === 'data') {
      if (format === null) throw new Error('WAV data comes before its fmt chunk')
      if ((format.tag !== 1 && format.tag !== 0xfffe) || format.bits !== 16) throw new Error('only 16-bit PCM WAV is supported')
      return { sampleRate: format.sampleRate, channels: format.channels, pcm: file.subarray(body, Math.min(file.length, body + size)) }
    }
    offset = body + size + (size % 2)
  }
  throw new Error('WAV has no data chunk')
}

/** A 44-byte header for 16-bit PCM of `dataBytes` bytes, mono unless `channels` says. */
export function wavHeader (sampleRate: number, dataBytes: number, channels = 1): Buffer {
  const header = Buffer.alloc(WAV_HEADER_BYTES)
  header.write('RIFF', 0, 'ascii')
  header.writeUInt32LE(36 + dataBytes, 4)
  header.write('WAVEfmt ', 8, 'ascii')
  header.writeUInt32LE(16, 16)
  header.writeUInt16LE(1, 20)
  header.writeUInt16LE(channels, 22)
  header.writeUInt32LE(sampleRate, 24)
  header.writeUInt32LE(sampleRate * 2 * channels, 28)
  header.writeUInt16LE(2 * channels, 32)
  header.writeUInt16LE(16, 34)
  header.write('data', 36, 'ascii')
  header.writeUInt32LE(dataBytes, 40)
  return header
}

export function writeWav (pcm: Buffer, sampleRate: number): Buffer {
  return Buffer.concat([wavHeader(sampleRate, pcm.length), pcm])
}

/** One channel (from 0) of interleaved 16-bit PCM. */
export function wavChannel (wav: Wav, channel: number): Buffer {
  if (wav.channels === 1) return wav.pcm
  const frames = Math.floor(wav.pcm.length / (2 * wav.channels))
  const mono = Buffer.alloc(frames * 2)
  for (let i = 0; i < frames; i++) mono.writeInt16LE(wav.pcm.readInt16LE((i * wav.channels + channel) * 2), i * 2)
  return mono
}
