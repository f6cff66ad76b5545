import type { Log } from '../logger.js'
import type { Metrics, Tally } from '../metrics.js'
import type { Playback } from '../playback/playback.js'
import { PublishDropped, type PublishOutcome, type Publisher } from '../publisher/publisher.js'
import type { AudioFrameHeader } from '../redis/audio-frame.js'
import type { CallEvent, CallStopEvent } from './call-events.js'

/** What a vendor's start message tells about a call, normalized. */
export interface CallInfo {
  interactionId: string
  tenantId: string | null
  vendor: string
  streamId: string | null
  sampleRate: number
  from: string | null
  to: string | null
  customParameters: Record<string, unknown>
}

export interface CallDependencies {
  publisher: Publisher
  transport: CallTransport
  /** The connection's logger; the call binds its identity to it. */
  log: Log
  metrics: Metrics
}

/** Counter children resolved once per call, so the per-frame path does no label lookups. */
function callCounters (metrics: Metrics, info: CallInfo) {
  const labels = metrics.callLabels(info.vendor, info.tenantId)
  return {
    labels,
    framesIn: metrics.framesIn.labels(labels),
    bytesIn: metrics.bytesIn.labels(labels),
    framesPublished: metrics.framesPublished.labels(labels),
    publishFailed: metrics.framesDropped.labels({ ...labels, reason: 'publish_failed' }),
    bufferFull: metrics.framesDropped.labels({ ...labels, reason: 'redis_buffer_full' }),
    afterEnd: metrics.framesDropped.labels({ ...labels, reason: 'after_end' }),
    gaps: metrics.sequenceGaps.labels(labels),
    duplicates: metrics.sequenceDuplicates.labels(labels),
    reorders: metrics.sequenceReorders.labels(labels)
  }
}

/** At most this many missing chunk numbers are remembered per call, to tell a late chunk from a duplicate. */
const MAX_MISSING = 1024

/** How a call reaches back to its vendor connection. */
export interface CallTransport {
  close (code: number, reason: string): void
}

/**
 * One live call: its identity, its counters and its publishing. All per-call state lives here, so the
 * registry, the shutdown path and later the playback path see the same object.
 */
export class Call implements Tally {
  readonly info: CallInfo
  readonly startedAt = Date.now()
  frames = 0
  bytes = 0
  framesLost = 0
  /** Vendor chunks missing, received twice, and received after a later one (from the vendor's chunk numbers). */
  gaps = 0
  duplicates = 0
  reordered = 0
  endReason: string | null = null
  /** Outbound audio, for two-way vendors while playback is enabled. */
  playback: Playback | null = null

  /** Log bound to the call's identity; use it for every line about this call. */
  readonly log: Log
  readonly #publisher: Publisher
  readonly #transport: CallTransport
  readonly #metrics: Metrics
  readonly #counters: ReturnType<typeof callCounters>
  readonly #bytesPerMs: number
  /** What the publisher reports each frame's fate to: made once per call, not per frame. */
  readonly #outcome: PublishOutcome
  /** call.stop while it waits to be sent: frames lost meanwhile still show in it. */
  #stopEvent: CallStopEvent | null = null
  #lastChunk: number | null = null
  readonly #missingChunks = new Set<number>()
  /** Frames Redis acknowledged, and what of frames, bytes and these the metrics have been told (see fold). */
  #published = 0
  #folded = { frames: 0, bytes: 0, published: 0 }

  constructor (info: CallInfo, { publisher, transport, log, metrics }: CallDependencies) {
    this.info = info
    this.#publisher = publisher
    this.#transport = transport
    this.#metrics = metrics
    this.#counters = callCounters(metrics, info)
    this.log = log.child({ interaction_id: info.interactionId, tenant_id: info.tenantId, vendor: info.vendor })
    this.#bytesPerMs = (info.sampleRate * 2) / 1000
    this.#outcome = {
      published: () => {
        // Acknowledgements still arrive after the call has ended and folded its tally for the last time.
        if (this.ended) this.#counters.framesPublished.inc()
        else this.#published++
      },
      failed: (err) => {
        if (err instanceof PublishDropped && err.reason === 'redis_buffer_full') this.#counters.bufferFull.inc()
        else this.#counters.publishFailed.inc()
        if (this.framesLost++ === 0) this.log.warn({ err }, 'audio frame not published to redis')
        if (this.#stopEvent !== null) this.#stopEvent.frames_lost = this.framesLost
      }
    }
  }

  get ended (): boolean {
    return this.endReason !== null
  }

  start (): void {
    const { info } = this
    this.#publishEvent({
      type: 'call.start',
      ...this.#identity(),
      sample_rate: info.sampleRate,
      encoding: 'pcm_s16le',
      channels: 1,
      from: info.from,
      to: info.to,
      custom_parameters: info.customParameters,
      audio_channel: this.#publisher.audioChannel(info.interactionId)
    })
    this.#metrics.callsStarted.inc(this.#counters.labels)
    this.#metrics.callsActive.inc(this.#counters.labels)
    this.#metrics.tallies.add(this)
    this.log.info(this.#summary(), 'call started')
  }

  /**
   * Publishes one frame of PCM s16le; timestampMs null means "derive it from the audio so far". `chunk` is the
   * vendor's media counter, which gap accounting follows.
   */
  audio (pcm: Buffer, vendorSeq: number | null, timestampMs: number | null, chunk: number | null = null): void {
    if (this.ended) {
      this.#counters.afterEnd.inc()
      return
    }
    if (chunk !== null) this.#account(chunk)
    const header: AudioFrameHeader = {
      interaction_id: this.info.interactionId,
      seq: this.frames + 1,
      vendor_seq: vendorSeq,
      timestamp_ms: timestampMs ?? Math.floor(this.bytes / this.#bytesPerMs),
      sample_rate: this.info.sampleRate,
      encoding: 'pcm_s16le',
      channels: 1
    }
    this.frames++
    this.bytes += pcm.length
    this.#publisher.publishAudio(header, pcm, this.#outcome)
  }

  /** Adds the frames, bytes and acknowledgements counted since the last fold to the call's metrics. */
  fold (): void {
    const folded = this.#folded
    if (this.frames > folded.frames) this.#counters.framesIn.inc(this.frames - folded.frames)
    if (this.bytes > folded.bytes) this.#counters.bytesIn.inc(this.bytes - folded.bytes)
    if (this.#published > folded.published) this.#counters.framesPublished.inc(this.#published - folded.published)
    this.#folded = { frames: this.frames, bytes: this.bytes, published: this.#published }
  }

  /** Follows the vendor's chunk numbers: a jump is a gap, a repeat a duplicate, a late missing one a reorder. */
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

  dtmf (digit: string, durationMs: number | null): void {
    if (this.ended) return
    this.#publishEvent({ type: 'call.dtmf', ...this.#identity(), digit, duration_ms: durationMs })
  }

  /** The vendor echoed a mark: it played the audio queued before it. */
  mark (name: string): void {
    if (this.ended) return
    if (this.playback !== null && !this.playback.markPlayed(name)) {
      this.log.debug({ name }, 'mark echoed after clear reported it, ignored')
      return
    }
    this.#publishEvent({ type: 'call.mark', ...this.#identity(), name, cleared: false })
  }

  /** clear dropped a mark before the vendor played it. */
  markCleared (name: string): void {
    if (this.ended) return
    this.#publishEvent({ type: 'call.mark', ...this.#identity(), name, cleared: true })
  }

  /** Publishes call.stop once; later calls are no-ops, so every path that ends a call may call it. */
  end (reason: string): void {
    if (this.ended) return
    this.endReason = reason
    this.playback?.stop()
    this.#stopEvent = {
      type: 'call.stop',
      ...this.#identity(),
      reason,
      frames: this.frames,
      bytes: this.bytes,
      duration_ms: Date.now() - this.startedAt,
      frames_lost: this.framesLost,
      gaps: this.gaps,
      duplicates: this.duplicates,
      reordered: this.reordered
    }
    this.#publishEvent(this.#stopEvent)
    this.fold()
    this.#metrics.tallies.delete(this)
    this.#metrics.callsActive.dec(this.#counters.labels)
    this.#metrics.callsEnded.inc({ ...this.#counters.labels, reason: this.#metrics.endReason(reason) })
    this.log.info(this.#summary(), 'call ended')
  }

  /** Ends the call and closes its vendor connection. */
  hangup (reason: string, closeCode: number, closeReason: string): void {
    this.end(reason)
    this.#transport.close(closeCode, closeReason)
  }

  #identity (): { interaction_id: string, tenant_id: string | null, vendor: string, stream_id: string | null, ts: number } {
    const { info } = this
    return { interaction_id: info.interactionId, tenant_id: info.tenantId, vendor: info.vendor, stream_id: info.streamId, ts: Date.now() }
  }

  /** The start and end lines carry these besides the bound identity, so one line tells the whole call. */
  #summary (): Record<string, unknown> {
    const { info } = this
    return {
      stream_id: info.streamId,
      sample_rate: info.sampleRate,
      frames: this.frames,
      bytes: this.bytes,
      frames_lost: this.framesLost,
      gaps: this.gaps,
      duplicates: this.duplicates,
      reordered: this.reordered,
      duration_ms: Date.now() - this.startedAt,
      reason: this.endReason
    }
  }

  #publishEvent (event: CallEvent): void {
    this.#publisher.publishEvent(event).catch((err: Error) => {
      this.log.warn({ err, event: event.type }, 'call event not published to redis')
    })
  }
}
