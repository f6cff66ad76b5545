import type { Metrics } from '../metrics.js'

/**
 * The outbound audio all calls of the process may hold at once (PLAYBACK_MAX_TOTAL_BYTES), beside each call's own
 * PLAYBACK_MAX_BUFFER_MS: without it, hundreds of calls whose workers publish whole utterances at once could hold
 * more than the pod's memory.
 */
export class PlaybackBudget {
  readonly #limit: number
  #used = 0

  constructor (limit: number, metrics: Metrics) {
    this.#limit = limit
    metrics.foldBeforeScrape(() => metrics.playbackBytes.set(this.#used))
  }

  get used (): number {
    return this.#used
  }

  /** Whether a call may queue `bytes` more now. */
  fits (bytes: number): boolean {
    return this.#used + bytes <= this.#limit
  }

  /** What a call's queue gained, or (negative) gave back; resampling may take an admitted call a little past it. */
  add (bytes: number): void {
    this.#used += bytes
  }
}
