/** Levels are RMS over this much audio: cheap, and as fine as a meter or a level history needs. */
export const LEVEL_WINDOW_MS = 100
/** Each track keeps this many levels (6.4 s): what a viewer polling every half second needs, and more. */
const KEPT = 64
/** Silence: the floor of the dBFS scale levels are given in. */
export const SILENCE_DBFS = -90

/** A track's most recent levels, in dBFS, oldest first; `next` is the number the next level will have. */
export interface RecentLevels {
  next: number
  values: number[]
}

/**
 * One track's level, in dBFS, per LEVEL_WINDOW_MS of PCM s16le: a ring of the last few, numbered, so a viewer that
 * polls takes each level once.
 */
export class LevelMeter {
  readonly #window: number
  #sumOfSquares = 0
  #samples = 0
  readonly #levels = new Float32Array(KEPT)
  #next = 0

  constructor (sampleRate: number) {
    this.#window = Math.max(1, Math.round((sampleRate * LEVEL_WINDOW_MS) / 1000))
  }

  /** Adds pcm[0, bytes) of PCM s16le. */
  add (pcm: Buffer, bytes: number): void {
    const count = bytes >>> 1
    let sum = 0
    // Node's pools align Buffers to 8 bytes; an odd offset (a slice of one) is read sample by sample.
    if ((pcm.byteOffset & 1) === 0) {
      const samples = new Int16Array(pcm.buffer, pcm.byteOffset, count)
      for (let i = 0; i < count; i++) sum += samples[i] * samples[i]
    } else {
      for (let i = 0; i < count; i++) {
        const sample = pcm.readInt16LE(i * 2)
        sum += sample * sample
      }
    }
    this.#sumOfSquares += sum
    this.#samples += count
    if (this.#samples < this.#window) return
    const rms = Math.sqrt(this.#sumOfSquares / this.#samples) / 32768
    this.#levels[this.#next % KEPT] = rms > 0 ? Math.max(SILENCE_DBFS, 20 * Math.log10(rms)) : SILENCE_DBFS
    this.#next++
    this.#sumOfSquares = 0
    this.#samples = 0
  }

  /** The last `max` levels (at most the KEPT it keeps), rounded to 0.1 dB. */
  recent (max: number): RecentLevels {
    const from = Math.max(0, this.#next - Math.min(max, KEPT))
    const values: number[] = []
    for (let n = from; n < this.#next; n++) values.push(Math.round(this.#levels[n % KEPT] * 10) / 10)
    return { next: this.#next, values }
  }
}
