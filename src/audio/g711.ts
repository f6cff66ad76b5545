/** What G.711 μ-law and A-law share: one table lookup per byte to decode, one function per sample to encode. */

/** G.711 bytes to PCM s16le through a 256-entry table: twice as many bytes out. */
export function decodeByTable (g711: Buffer, table: Int16Array): Buffer {
  const pcm = Buffer.allocUnsafe(g711.length * 2)
  for (let i = 0; i < g711.length; i++) pcm.writeInt16LE(table[g711[i]], i * 2)
  return pcm
}

/** PCM s16le to G.711 bytes, a sample at a time. */
export function encodeBySample (pcm: Buffer, encodeSample: (sample: number) => number): Buffer {
  const g711 = Buffer.allocUnsafe(pcm.length >> 1)
  for (let i = 0; i < g711.length; i++) g711[i] = encodeSample(pcm.readInt16LE(i * 2))
  return g711
}
