import { performance } from 'node:perf_hooks'
import { pcmBytesPerMs } from '../audio/pcm.js'
import { Resampler } from '../audio/resampler.js'
import type { Log } from '../logger.js'
import type { Metrics } from '../metrics.js'
import type { OutboundEncoder } from '../vendors/vendor-adapter.js'
import { PlaybackMessageError, parsePlaybackMessage } from './playback-message.js'

export interface PlaybackOptions {
  encoder: OutboundEncoder
  /** The call's own rate; the vendor plays at encoder.sampleRate, or at this when that is null. */
  callSampleRate: number
  streamId: string | null
  send: (text: string) => void
  /** Ends the call and closes its connection normally: the hang-up command. */
  hangup: () => void
  /** Reports a mark that clear dropped (call.mark with cleared: true). */
  markCleared: (name: string) => void
  /** At most this much audio sits unplayed at the vendor. */
  leadMs: number
  /** At most this much audio waits in the gateway; newer audio past it is refused. */
  maxBufferMs: number
  metrics: Metrics
  vendor: string
  log: Log
}

type Item = { kind: 'audio', pcm: Buffer } | { kind: 'mark', name: string } | { kind: 'hangup' }

/** Audio that has stopped growing for this long is sent even if it is shorter than a chunk (padded). */
const PARTIAL_FLUSH_MS = 100

/**
 * One call's outbound audio: queued in order with its marks, cut by the vendor's chunk rules, and paced so that
 * the vendor never holds more than `leadMs` of unplayed audio, which keeps clear responsive.
 */
export class Playback {
  readonly #options: PlaybackOptions
  readonly #rate: number
  readonly #bytesPerMs: number
  readonly #chunkBytes: number
  readonly #maxBufferBytes: number
  #queue: Item[] = []
  #queuedBytes = 0
  #resampler: Resampler | null = null
  /** When (performance.now()) the vendor will have played everything sent so far. */
  #playedBy = 0
  #lastAudioAt = 0
  /** Marks sent to the vendor and not yet echoed, in order. */
  #sentMarks: string[] = []
  /** Marks already reported as cleared; a late echo of one is not published again. */
  readonly #clearedMarks = new Set<string>()
  #timer: NodeJS.Timeout | null = null
  #stopped = false

  constructor (options: PlaybackOptions) {
    this.#options = options
    this.#rate = options.encoder.sampleRate ?? options.callSampleRate
    this.#bytesPerMs = pcmBytesPerMs(this.#rate)
    const { ms, multipleOf, minBytes, maxBytes } = options.encoder.chunks
    this.#chunkBytes = Math.min(maxBytes, Math.max(minBytes, roundUp(ms * this.#bytesPerMs, multipleOf)))
    this.#maxBufferBytes = options.maxBufferMs * this.#bytesPerMs
  }

  /** One message from the call's playback channel. Malformed ones are dropped, logged and counted. */
  receive (message: Buffer): void {
    if (this.#stopped) {
      this.#drop('call_ended')
      return
    }
    try {
      const command = parsePlaybackMessage(message)
      if (command.kind === 'audio') this.#enqueueAudio(command.sampleRate, command.pcm)
      else if (command.kind === 'mark') this.#enqueue({ kind: 'mark', name: command.name })
      else if (command.kind === 'hangup') this.#enqueue({ kind: 'hangup' })
      else this.#clear()
    } catch (err) {
      if (!(err instanceof PlaybackMessageError)) throw err
      this.#options.log.warn({ reason: err.reason, detail: err.message }, 'playback message dropped')
      this.#drop(err.reason)
    }
  }

  /**
   * The vendor echoed a mark: false when it was already reported as cleared, so it is not published twice.
   */
  markPlayed (name: string): boolean {
    const index = this.#sentMarks.indexOf(name)
    if (index !== -1) this.#sentMarks.splice(index, 1)
    return !this.#clearedMarks.delete(name)
  }

  /** The call has ended: what is still queued is dropped and counted. */
  stop (): void {
    if (this.#stopped) return
    this.#stopped = true
    if (this.#timer !== null) clearTimeout(this.#timer)
    if (this.#queuedBytes > 0) {
      this.#drop('call_ended')
      this.#options.log.info({ dropped_ms: Math.round(this.#queuedBytes / this.#bytesPerMs) }, 'call ended with playback queued')
    }
    this.#queue = []
    this.#queuedBytes = 0
  }

  #enqueueAudio (sampleRate: number, pcm: Buffer): void {
    const bytes = Math.ceil((pcm.length * this.#rate) / sampleRate)
    if (this.#queuedBytes + bytes > this.#maxBufferBytes) {
      this.#options.log.warn({ queued_ms: Math.round(this.#queuedBytes / this.#bytesPerMs), max_ms: this.#options.maxBufferMs },
        'playback audio refused: queue full')
      this.#drop('buffer_full')
      return
    }
    if (this.#resampler !== null && this.#resampler.inRate !== sampleRate) this.#flushResampler()
    if (sampleRate !== this.#rate && this.#resampler === null) this.#resampler = new Resampler(sampleRate, this.#rate)
    this.#pushAudio(this.#resampler === null ? pcm : this.#resampler.process(pcm))
    this.#lastAudioAt = performance.now()
    this.#pump()
  }

  #enqueue (item: Item): void {
    this.#flushResampler()
    this.#queue.push(item)
    this.#pump()
  }

  #pushAudio (pcm: Buffer): void {
    if (pcm.length === 0) return
    this.#queue.push({ kind: 'audio', pcm })
    this.#queuedBytes += pcm.length
  }

  /** The end of an utterance: the resampler's tail joins the queue before whatever comes next. */
  #flushResampler (): void {
    if (this.#resampler === null) return
    this.#pushAudio(this.#resampler.flush())
    this.#resampler = null
  }

  #clear (): void {
    this.#resampler = null
    const queuedMarks = this.#queue.flatMap((item) => (item.kind === 'mark' ? [item.name] : []))
    const hangup = this.#queue.some((item) => item.kind === 'hangup')
    this.#queue = hangup ? [{ kind: 'hangup' }] : []
    this.#queuedBytes = 0
    this.#options.send(this.#options.encoder.clear(this.#options.streamId))
    this.#playedBy = performance.now()
    for (const name of [...this.#sentMarks, ...queuedMarks]) {
      this.#clearedMarks.add(name)
      this.#options.markCleared(name)
    }
    this.#sentMarks = []
    this.#pump()
  }

  /** Sends what the lead allows now, then sleeps until more may go. */
  #pump (): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer)
      this.#timer = null
    }
    const { encoder, streamId, send, metrics, vendor, leadMs } = this.#options
    while (!this.#stopped) {
      const head = this.#queue[0]
      if (head === undefined) return
      const now = performance.now()
      if (head.kind === 'mark') {
        this.#queue.shift()
        send(encoder.mark(streamId, head.name))
        this.#sentMarks.push(head.name)
        metrics.playbackMarksOut.inc({ vendor })
        continue
      }
      if (head.kind === 'hangup') {
        // Hang up once the vendor has played what was sent, so the caller hears the goodbye.
        if (this.#playedBy > now) return this.#wake(this.#playedBy - now)
        this.#options.hangup()
        return
      }
      const { bytes, endsUtterance } = this.#audioRun()
      let size = Math.min(bytes, this.#chunkBytes)
      if (size < this.#chunkBytes && !endsUtterance) {
        const idle = now - this.#lastAudioAt
        if (idle < PARTIAL_FLUSH_MS) return this.#wake(PARTIAL_FLUSH_MS - idle)
        this.#flushResampler()
        size = Math.min(this.#audioRun().bytes, this.#chunkBytes)
      }
      const paddedBytes = this.#padded(size)
      const durationMs = paddedBytes / this.#bytesPerMs
      const startsAt = Math.max(this.#playedBy, now)
      if (startsAt + durationMs - now > leadMs) return this.#wake(startsAt + durationMs - leadMs - now)
      send(encoder.media(streamId, this.#pad(this.#take(size), paddedBytes)))
      this.#playedBy = startsAt + durationMs
      metrics.playbackFramesOut.inc({ vendor })
    }
  }

  /** The audio bytes at the head of the queue, and whether a mark or hang-up (an utterance's end) follows them. */
  #audioRun (): { bytes: number, endsUtterance: boolean } {
    let bytes = 0
    for (const item of this.#queue) {
      if (item.kind !== 'audio') return { bytes, endsUtterance: true }
      bytes += item.pcm.length
    }
    return { bytes, endsUtterance: false }
  }

  #take (size: number): Buffer {
    const parts: Buffer[] = []
    let needed = size
    while (needed > 0) {
      const head = this.#queue[0] as { kind: 'audio', pcm: Buffer }
      if (head.pcm.length <= needed) {
        parts.push(head.pcm)
        needed -= head.pcm.length
        this.#queue.shift()
      } else {
        parts.push(head.pcm.subarray(0, needed))
        head.pcm = head.pcm.subarray(needed)
        needed = 0
      }
    }
    this.#queuedBytes -= size
    return parts.length === 1 ? parts[0] : Buffer.concat(parts)
  }

  /** The size a message of `bytes` of audio goes out at: the vendor's multiple, and at least its minimum. */
  #padded (bytes: number): number {
    const { multipleOf, minBytes } = this.#options.encoder.chunks
    return Math.max(minBytes, roundUp(bytes, multipleOf))
  }

  /** Zero-pads the end of an utterance. */
  #pad (pcm: Buffer, size: number): Buffer {
    if (size === pcm.length) return pcm
    const padded = Buffer.alloc(size)
    pcm.copy(padded)
    return padded
  }

  #drop (reason: string): void {
    this.#options.metrics.playbackDropped.inc({ reason })
  }

  #wake (ms: number): void {
    this.#timer = setTimeout(() => this.#pump(), Math.max(1, Math.ceil(ms)))
  }
}

function roundUp (value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple
}
