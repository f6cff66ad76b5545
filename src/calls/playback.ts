import { performance } from 'node:perf_hooks'
import { pcmBytesPerMs } from '../audio/pcm.js'
import { Resampler } from '../audio/resampler.js'
import type { Log } from '../logger.js'
import type { Metrics } from '../metrics.js'
import type { OutboundEncoder } from '../vendors/vendor-adapter.js'
import { PlaybackMessageError, parsePlaybackMessage } from '../bus/playback-message.js'
import type { PlaybackBudget } from './playback-budget.js'

/** What playback asks of its call: the way to the vendor, and where to report. */
export interface PlaybackHost {
  send (data: string | Buffer): void
  /** The hang-up command has played out: end the call and close its connection normally. */
  hangup (): void
  /** clear dropped a mark before the vendor played it (call.mark with cleared: true). */
  markCleared (name: string): void
}

/** The process's playback limits, the same for every call. */
export interface PlaybackSettings {
  /** At most this much audio sits unplayed at the vendor. */
  leadMs: number
  /** At most this much audio waits in the gateway per call; newer audio past it is refused. */
  maxBufferMs: number
  /** A larger playback message is refused before it is parsed. */
  maxMessageBytes: number
  /** What all calls' queued audio may hold together. */
  budget: PlaybackBudget
}

export interface PlaybackOptions extends PlaybackSettings {
  host: PlaybackHost
  encoder: OutboundEncoder
  /** The call's own rate; the vendor plays at encoder.sampleRate, or at this when that is null. */
  callSampleRate: number
  streamId: string | null
  metrics: Metrics
  vendor: string
  log: Log
}

/** A call's playback as it stands (Playback.status). */
export interface PlaybackStatus {
  /** Audio waiting in the gateway. */
  queued_ms: number
  /** Audio sent and not yet played at the vendor, by the pacing's reckoning. */
  lead_ms: number
  /** Marks sent or queued whose echo has not come back. */
  marks_pending: number
}

/** The messages of a vendor that plays audio; audio and marks are only ever queued for one. */
type Player = Required<Pick<OutboundEncoder, 'media' | 'mark' | 'clear'>>

type Item = { kind: 'audio', pcm: Buffer, rate: number } | { kind: 'mark', name: string } | { kind: 'hangup' }

/** Audio that has stopped growing for this long is sent even if it is shorter than a chunk (padded). */
const PARTIAL_FLUSH_MS = 100
/** Audio is resampled this much at a time, as it is about to be sent, so no message stalls the event loop. */
const RESAMPLE_SLICE_MS = 200

/**
 * One call's outbound audio: queued in order with its marks, cut by the vendor's chunk rules, and paced so that
 * the vendor never holds more than `leadMs` of unplayed audio, which keeps clear responsive.
 */
export class Playback {
  readonly #options: PlaybackOptions
  readonly #rate: number
  readonly #bytesPerMs: number
  readonly #chunkBytes: number
  /** How the vendor plays audio; null for one that plays none (AudioHook), whose audio, marks and clears are dropped. */
  readonly #player: Player | null
  /** Audio, marks and hang-ups as workers sent them; audio still at its own rate. */
  #queue: Item[] = []
  /** Audio already at the vendor's rate, ahead of everything in #queue. */
  #ready: Buffer[] = []
  #readyBytes = 0
  /** Audio waiting in the gateway, ready or not, for the PLAYBACK_MAX_BUFFER_MS bound. */
  #queuedMs = 0
  /** Its bytes, as the process-wide budget counts them. */
  #heldBytes = 0
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
  /** The reason of the refusals since audio was last accepted, so a run of them is logged once. */
  #refusing: string | null = null

  constructor (options: PlaybackOptions) {
    this.#options = options
    this.#rate = options.encoder.sampleRate ?? options.callSampleRate
    this.#bytesPerMs = pcmBytesPerMs(this.#rate)
    const { media, mark, clear } = options.encoder
    this.#player = media !== undefined && mark !== undefined && clear !== undefined ? { media, mark, clear } : null
    const { ms, multipleOf, minBytes, maxBytes } = options.encoder.chunks
    this.#chunkBytes = Math.min(maxBytes, Math.max(minBytes, roundUp(ms * this.#bytesPerMs, multipleOf)))
  }

  /** One message from the call's playback channel. Malformed ones are dropped, logged and counted. */
  receive (message: Buffer): void {
    if (this.#stopped) {
      this.#drop('call_ended')
      return
    }
    if (message.length > this.#options.maxMessageBytes) {
      this.#refuse('too_big', { bytes: message.length, max_bytes: this.#options.maxMessageBytes }, 'playback message dropped: larger than PLAYBACK_MAX_MESSAGE_BYTES')
      return
    }
    try {
      const command = parsePlaybackMessage(message)
      switch (command.kind) {
        case 'hangup':
          this.#enqueue({ kind: 'hangup' })
          return
        case 'event':
          this.#event(command.payload)
          return
        case 'pause':
        case 'resume':
          // The call takes these before its playback does (LiveCall.playback).
          return
      }
      if (this.#player === null) {
        this.#drop('not_played')
        this.#options.log.debug({ command: command.kind }, 'playback message dropped: the vendor plays no audio')
      } else if (command.kind === 'audio') this.#enqueueAudio(command.sampleRate, command.pcm)
      else if (command.kind === 'mark') this.#enqueue({ kind: 'mark', name: command.name })
      else this.#clear()
    } catch (err) {
      if (!(err instanceof PlaybackMessageError)) throw err
      this.#options.log.warn({ reason: err.reason, detail: err.message }, 'playback message dropped')
      this.#drop(err.reason)
    }
  }

  /** A worker's message for the vendor itself: sent at once, ahead of queued audio, when the vendor takes one. */
  #event (payload: Record<string, unknown>): void {
    const { encoder, streamId, host, log } = this.#options
    if (encoder.event === undefined) {
      log.warn({ reason: 'unsupported_command' }, 'playback message dropped: this vendor takes no event')
      this.#drop('unsupported_command')
      return
    }
    host.send(encoder.event(streamId, payload))
  }

  /** The vendor echoed a mark: false when it was already reported as cleared, so it is not published twice. */
  markPlayed (name: string): boolean {
    const index = this.#sentMarks.indexOf(name)
    if (index !== -1) this.#sentMarks.splice(index, 1)
    return !this.#clearedMarks.delete(name)
  }

  /** What a dashboard shows of the call's playback: audio waiting here, unplayed at the vendor, and marks not yet echoed. */
  status (): PlaybackStatus {
    const marksQueued = this.#queue.reduce((count, item) => (item.kind === 'mark' ? count + 1 : count), 0)
    return {
      queued_ms: Math.round(this.#queuedMs),
      lead_ms: Math.max(0, Math.round(this.#playedBy - performance.now())),
      marks_pending: this.#sentMarks.length + marksQueued
    }
  }

  /** The call has ended: what is still queued is dropped and counted. */
  stop (): void {
    if (this.#stopped) return
    this.#stopped = true
    if (this.#timer !== null) clearTimeout(this.#timer)
    if (this.#queuedMs > 0) {
      this.#drop('call_ended')
      this.#options.log.info({ dropped_ms: Math.round(this.#queuedMs) }, 'call ended with playback queued')
    }
    this.#dropAudio()
  }

  #enqueueAudio (rate: number, pcm: Buffer): void {
    const ms = pcm.length / pcmBytesPerMs(rate)
    if (this.#queuedMs + ms > this.#options.maxBufferMs) {
      this.#refuse('buffer_full', { queued_ms: Math.round(this.#queuedMs), max_ms: this.#options.maxBufferMs }, 'playback audio refused: queue full')
      return
    }
    if (pcm.length === 0) return
    const { budget } = this.#options
    if (!budget.fits(pcm.length)) {
      this.#refuse('process_budget', { bytes: pcm.length, process_bytes: budget.used }, 'playback audio refused: PLAYBACK_MAX_TOTAL_BYTES reached')
      return
    }
    this.#refusing = null
    this.#hold(pcm.length)
    this.#queue.push({ kind: 'audio', pcm, rate })
    this.#queuedMs += ms
    this.#lastAudioAt = performance.now()
    this.#pump()
  }

  #enqueue (item: Item): void {
    this.#queue.push(item)
    this.#pump()
  }

  /**
   * Brings audio from the head of the queue to the vendor's rate until `bytes` are ready or a mark or hang-up is
   * next. An utterance's end (a mark, a hang-up, another rate) flushes the resampler's tail before it.
   */
  #fill (bytes: number): void {
    while (this.#readyBytes < bytes) {
      const head = this.#queue[0]
      if (head === undefined || head.kind !== 'audio') return
      if (head.rate === this.#rate && this.#resampler === null) {
        this.#queue.shift()
        this.#queuedMs -= head.pcm.length / this.#bytesPerMs
        this.#pushReady(head.pcm)
        continue
      }
      if (this.#resampler !== null && this.#resampler.inRate !== head.rate) {
        this.#flushResampler()
        continue
      }
      this.#resampler ??= new Resampler(head.rate, this.#rate)
      const sliceBytes = Math.min(head.pcm.length, roundUp(RESAMPLE_SLICE_MS * pcmBytesPerMs(head.rate), 2))
      const slice = head.pcm.subarray(0, sliceBytes)
      head.pcm = head.pcm.subarray(sliceBytes)
      if (head.pcm.length === 0) this.#queue.shift()
      this.#queuedMs -= slice.length / pcmBytesPerMs(head.rate)
      const resampled = this.#resampler.process(slice)
      this.#hold(resampled.length - slice.length)
      this.#pushReady(resampled)
      const next = this.#queue[0]
      if (next !== undefined && (next.kind !== 'audio' || next.rate !== head.rate)) this.#flushResampler()
    }
  }

  #flushResampler (): void {
    if (this.#resampler === null) return
    const tail = this.#resampler.flush()
    this.#hold(tail.length)
    this.#pushReady(tail)
    this.#resampler = null
  }

  #pushReady (pcm: Buffer): void {
    if (pcm.length === 0) return
    this.#ready.push(pcm)
    this.#readyBytes += pcm.length
    this.#queuedMs += pcm.length / this.#bytesPerMs
  }

  /** Counts bytes the call's queue gains (or, negative, loses) against the process-wide budget. */
  #hold (bytes: number): void {
    this.#heldBytes += bytes
    this.#options.budget.add(bytes)
  }

  #dropAudio (): void {
    this.#hold(-this.#heldBytes)
    this.#queue = this.#queue.filter((item) => item.kind !== 'audio')
    this.#ready = []
    this.#readyBytes = 0
    this.#queuedMs = 0
    this.#resampler = null
  }

  #clear (): void {
    const queuedMarks = this.#queue.flatMap((item) => (item.kind === 'mark' ? [item.name] : []))
    this.#dropAudio()
    this.#queue = this.#queue.filter((item) => item.kind === 'hangup')
    // Only a vendor that plays audio gets here (#receive drops a clear for one that does not).
    this.#options.host.send((this.#player as Player).clear(this.#options.streamId))
    this.#playedBy = performance.now()
    for (const name of [...this.#sentMarks, ...queuedMarks]) {
      this.#clearedMarks.add(name)
      this.#options.host.markCleared(name)
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
    const { host, streamId, metrics, vendor, leadMs } = this.#options
    while (!this.#stopped) {
      this.#fill(this.#chunkBytes)
      const now = performance.now()
      if (this.#readyBytes === 0) {
        const head = this.#queue[0]
        if (head === undefined) {
          if (this.#resampler === null) return
          // The last audio was resampled; its tail goes out once no more has come for a moment.
          const idle = now - this.#lastAudioAt
          if (idle < PARTIAL_FLUSH_MS) return this.#wake(PARTIAL_FLUSH_MS - idle)
          this.#flushResampler()
          continue
        }
        if (head.kind === 'mark') {
          this.#queue.shift()
          host.send((this.#player as Player).mark(streamId, head.name))
          this.#sentMarks.push(head.name)
          metrics.playbackMarksOut.inc({ vendor })
          continue
        }
        if (head.kind === 'hangup') {
          // Hang up once the vendor has played what was sent, so the caller hears the goodbye.
          if (this.#playedBy > now) return this.#wake(this.#playedBy - now)
          host.hangup()
          return
        }
        continue
      }
      let size = Math.min(this.#readyBytes, this.#chunkBytes)
      const endsUtterance = this.#queue.length > 0
      if (size < this.#chunkBytes && !endsUtterance) {
        const idle = now - this.#lastAudioAt
        if (idle < PARTIAL_FLUSH_MS) return this.#wake(PARTIAL_FLUSH_MS - idle)
        this.#flushResampler()
        size = Math.min(this.#readyBytes, this.#chunkBytes)
      }
      const paddedBytes = this.#padded(size)
      const durationMs = paddedBytes / this.#bytesPerMs
      const startsAt = Math.max(this.#playedBy, now)
      // When the vendor has nothing left to play, a chunk goes at once even if it is longer than the lead.
      if (startsAt > now && startsAt + durationMs - now > leadMs) return this.#wake(startsAt + durationMs - leadMs - now)
      host.send((this.#player as Player).media(streamId, this.#pad(this.#take(size), paddedBytes)))
      this.#playedBy = startsAt + durationMs
      metrics.playbackFramesOut.inc({ vendor })
    }
  }

  #take (size: number): Buffer {
    const parts: Buffer[] = []
    let needed = size
    while (needed > 0) {
      const head = this.#ready[0]
      if (head.length <= needed) {
        parts.push(head)
        needed -= head.length
        this.#ready.shift()
      } else {
        parts.push(head.subarray(0, needed))
        this.#ready[0] = head.subarray(needed)
        needed = 0
      }
    }
    this.#readyBytes -= size
    this.#queuedMs -= size / this.#bytesPerMs
    this.#hold(-size)
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

  /** Counts every refusal, and logs the first of a run of them for one reason: a worker flooding is one line. */
  #refuse (reason: string, fields: Record<string, unknown>, message: string): void {
    if (this.#refusing !== reason) this.#options.log.warn({ ...fields, reason }, message)
    this.#refusing = reason
    this.#drop(reason)
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
