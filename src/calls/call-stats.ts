import { PublishDropped, type PublishOutcome } from '../bus/bus.js'
import type { TrackTotals } from '../bus/call-events.js'
import type { Metrics } from '../metrics.js'

/** At most this many missing chunk numbers are remembered per call, to tell a late chunk from a duplicate. */
const MAX_MISSING = 1024

/**
 * One call's counts (one track's, in a call with two): frames, bytes, losses, and what the vendor's chunk numbers say. On the frame path they are
 * plain numbers; the metrics hear of frames, bytes and acknowledgements when they are folded in, at each scrape
 * and at the call's end. The bus reports each frame's fate to it directly.
 */
export class CallStats implements PublishOutcome {
  frames = 0
  bytes = 0
  /** Frames that never reached Redis (refused, or dropped from the outage buffer). */
  framesLost = 0
  /** Vendor chunks still missing, received twice, and received after a later one. */
  gaps = 0
  duplicates = 0
  reordered = 0
  /** Frames received while the call was paused, and their bytes: counted, never published. */
  framesWithheld = 0
  bytesWithheld = 0
  #published = 0
  #folded = { frames: 0, bytes: 0, published: 0 }
  /** After the last fold, acknowledgements go to their counter directly. */
  #closed = false
  #lastChunk: number | null = null
  readonly #missingChunks = new Set<number>()
  readonly #counters: ReturnType<typeof callCounters>
  /** Told of every frame lost, with whether it is the call's first. */
  readonly #onLoss: (err: Error, first: boolean) => void

  constructor (metrics: Metrics, labels: Record<string, string>, onLoss: (err: Error, first: boolean) => void) {
    this.#counters = callCounters(metrics, labels)
    this.#onLoss = onLoss
  }

  /** One frame received; `chunk` is the vendor's media counter, when it sends one. */
  frame (bytes: number, chunk: number | null): void {
    if (chunk !== null) this.#account(chunk)
    this.frames++
    this.bytes += bytes
  }

  /** One frame received while the call is paused: its chunk still counts, so the resume shows no false gap. */
  withhold (bytes: number, chunk: number | null): void {
    if (chunk !== null) this.#account(chunk)
    this.framesWithheld++
    this.bytesWithheld += bytes
    this.#counters.withheld.inc()
  }

  /** Redis acknowledged one frame. */
  published (): void {
    if (this.#closed) this.#counters.framesPublished.inc()
    else this.#published++
  }

  /** One frame will never reach Redis. */
  failed (err: Error): void {
    if (err instanceof PublishDropped && err.reason === 'redis_buffer_full') this.#counters.bufferFull.inc()
    else this.#counters.publishFailed.inc()
    this.#onLoss(err, this.framesLost++ === 0)
  }

  /** The counts as call.stop gives them. */
  totals (): TrackTotals {
    return {
      frames: this.frames,
      bytes: this.bytes,
      frames_lost: this.framesLost,
      gaps: this.gaps,
      duplicates: this.duplicates,
      reordered: this.reordered,
      frames_withheld: this.framesWithheld,
      bytes_withheld: this.bytesWithheld
    }
  }

  /** A frame arrived after the call had ended, and was not published. */
  afterEnd (): void {
    this.#counters.afterEnd.inc()
  }

  /** Adds the frames, bytes and acknowledgements counted since the last fold to the call's metrics. */
  fold (): void {
    const folded = this.#folded
    if (this.frames > folded.frames) this.#counters.framesIn.inc(this.frames - folded.frames)
    if (this.bytes > folded.bytes) this.#counters.bytesIn.inc(this.bytes - folded.bytes)
    if (this.#published > folded.published) this.#counters.framesPublished.inc(this.#published - folded.published)
    this.#folded = { frames: this.frames, bytes: this.bytes, published: this.#published }
  }

  /** The last fold: acknowledgements still arrive after the call has ended. */
  close (): void {
    this.fold()
    this.#closed = true
  }

  /** A jump in the chunk numbers is a gap, a repeat a duplicate, a late missing one a reorder. */
  #account (chunk: number): void {
    const last = this.#lastChunk
    if (last === null || chunk === last + 1) {
      this.#lastChunk = chunk
    } else if (chunk > last + 1) {
      const missing = chunk - last - 1
      this.gaps += missing
      this.#counters.gaps.inc(missing)
      for (let n = last + 1; n < chunk && this.#missingChunks.size < MAX_MISSING; n++) this.#missingChunks.add(n)
      this.#lastChunk = chunk
    } else if (this.#missingChunks.delete(chunk)) {
      // The call's gaps are what is still missing; the gaps metric, a counter, keeps the jump it saw.
      this.gaps--
      this.reordered++
      this.#counters.reorders.inc()
    } else {
      this.duplicates++
      this.#counters.duplicates.inc()
    }
  }
}

/** Counter children resolved once per call, so counting does no label lookups. */
function callCounters (metrics: Metrics, labels: Record<string, string>) {
  return {
    framesIn: metrics.framesIn.labels(labels),
    bytesIn: metrics.bytesIn.labels(labels),
    framesPublished: metrics.framesPublished.labels(labels),
    publishFailed: metrics.framesDropped.labels({ ...labels, reason: 'publish_failed' }),
    bufferFull: metrics.framesDropped.labels({ ...labels, reason: 'redis_buffer_full' }),
    afterEnd: metrics.framesDropped.labels({ ...labels, reason: 'after_end' }),
    withheld: metrics.framesWithheld.labels(labels),
    gaps: metrics.sequenceGaps.labels(labels),
    duplicates: metrics.sequenceDuplicates.labels(labels),
    reorders: metrics.sequenceReorders.labels(labels)
  }
}
