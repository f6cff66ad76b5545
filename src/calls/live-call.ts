import type { AudioFrameHeader } from '../bus/audio-frame.js'
import type { Bus, PublishOutcome } from '../bus/bus.js'
import type { CallEvent, CallStopEvent } from '../bus/call-events.js'
import { debugEnabled, type Log } from '../logger.js'
import type { Metrics } from '../metrics.js'
import type { InboundEvent, StreamStart } from '../vendors/inbound-event.js'
import { CloseCode, ProtocolError } from '../vendors/protocol-error.js'
import type { StreamDecoder, VendorAdapter } from '../vendors/vendor-adapter.js'
import { VendorDetector, type Candidate } from '../vendors/vendor-detector.js'
import { CallStats } from './call-stats.js'
import { Playback } from './playback.js'

/** The socket of a vendor connection, as its call uses it. */
export interface CallSocket {
  send (text: string): void
  close (code: number, reason: string): void
  terminate (): void
  ping (): void
}

/** What a call asks of the registry that holds it. */
export interface CallOwner {
  /** Takes the call's interaction id; false when another live call holds it. */
  claim (call: LiveCall): boolean
  started (call: LiveCall): void
  /** The call has ended; its id is free again. */
  ended (call: LiveCall): void
}

export interface LiveCallOptions {
  socket: CallSocket
  /** The vendors this connection may be: one on a vendor's own route, every admitted one on /v1/ingest. */
  candidates: Candidate[]
  /** The connection's logger (it carries the request id). */
  log: Log
  owner: CallOwner
  bus: Bus
  metrics: Metrics
  playback: PlaybackSettings
}

export interface PlaybackSettings {
  /** At most this much audio sits unplayed at the vendor. */
  leadMs: number
  /** At most this much audio waits in the gateway per call. */
  maxBufferMs: number
}

export interface KeepaliveSettings {
  pingIntervalMs: number
  pongTimeoutMs: number
  idleTimeoutMs: number
}

/** What a vendor's start message tells about a call, normalized, with the vendor it came from. */
export interface CallInfo extends Omit<StreamStart, 'callId' | 'declaredSampleRate'> {
  interactionId: string
  vendor: string
}

/** One connection's call as a dashboard sees it (LiveCalls.snapshot). */
export interface CallSnapshot {
  state: 'awaiting-start' | 'live' | 'ended'
  vendor: string | null
  interaction_id: string | null
  tenant_id: string | null
  stream_id: string | null
  sample_rate: number | null
  /** Epoch ms of the start message; null before it. */
  started_at: number | null
  frames: number
  bytes: number
  frames_lost: number
  gaps: number
  duplicates: number
  reordered: number
}

/** Metric reasons for the close codes a refusal uses. */
const CLOSE_REASONS: Record<number, string> = {
  [CloseCode.PROTOCOL_ERROR]: 'protocol_error',
  [CloseCode.UNSUPPORTED_DATA]: 'unsupported_data',
  [CloseCode.INVALID_PAYLOAD]: 'invalid_payload',
  [CloseCode.POLICY_VIOLATION]: 'policy_violation',
  [CloseCode.MESSAGE_TOO_BIG]: 'too_big',
  [CloseCode.INTERNAL_ERROR]: 'internal_error'
}

/** Close reasons are limited to 123 bytes by RFC 6455. */
const MAX_CLOSE_REASON = 123

/**
 * One vendor connection and its call, from the upgrade to the close: every piece of its state lives here. It
 * settles the vendor (at once, or by detection from the first messages), enforces the order
 * connected? → start → media|dtmf|mark* → stop, publishes the call, keeps its counts and its keepalive, plays
 * what workers send into two-way calls, and ends the call exactly once, however the connection ends.
 */
export class LiveCall {
  #state: CallSnapshot['state'] = 'awaiting-start'
  readonly #socket: CallSocket
  readonly #options: LiveCallOptions
  #log: Log
  /** Read once: the level does not change at runtime. */
  readonly #debug: boolean

  readonly #detector: VendorDetector
  #adapter: VendorAdapter | null = null
  #decoder: StreamDecoder | null = null
  /** Messages held while detection is undecided, replayed once the vendor is known. */
  #held: Array<[Buffer, boolean]> = []

  /** Set by the start message. */
  #info: CallInfo | null = null
  #stats: CallStats | null = null
  #startedAt = 0
  #labels: Record<string, string> = {}
  /** What the bus reports each frame's fate to: made once per call, not per frame. */
  #outcome: PublishOutcome | null = null
  /** call.stop while it waits to be sent: frames lost meanwhile still show in it. */
  #stopEvent: CallStopEvent | null = null
  #endReason: string | null = null
  /** Outbound audio, for two-way vendors. */
  #playback: Playback | null = null

  /** Messages received, and the count the keepalive last saw and when it last changed: idle is no change. */
  #messages = 0
  #messagesSeen = 0
  #quietSince = Date.now()
  #lastPingAt = Date.now()
  /** When the pong to the last ping is overdue; null when none is awaited. */
  #pongDueAt: number | null = null

  constructor (options: LiveCallOptions) {
    this.#options = options
    this.#socket = options.socket
    this.#log = options.log
    this.#debug = debugEnabled(options.log)
    this.#detector = new VendorDetector(options.candidates)
    const decided = this.#detector.decided
    if (decided !== null) this.#use(decided)
  }

  /** The call's identity once its start message has come; null before. */
  get info (): CallInfo | null {
    return this.#info
  }

  /** Decodes and applies one WebSocket message; a refused one closes the connection, never the process. */
  receive (data: Buffer, isBinary: boolean): void {
    this.#messages++
    if (this.#state === 'ended') {
      this.#afterEnd(data, isBinary)
      return
    }
    try {
      if (this.#decoder === null) {
        this.#detect(data, isBinary)
        return
      }
      const decoded = this.#decoder.decode(data, isBinary, this.#debug)
      if (decoded.unknownFields !== undefined && decoded.unknownFields.length > 0) {
        this.#log.debug({ fields: decoded.unknownFields }, 'unknown fields, ignored')
      }
      this.#handle(decoded.event)
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.reject(err)
        return
      }
      this.#log.error({ err }, 'message handling failed')
      this.reject(new ProtocolError(CloseCode.INTERNAL_ERROR, 'internal error'))
    }
  }

  /** Closes the connection for a message the gateway refuses, with a log line naming the call and the reason. */
  reject (err: ProtocolError): void {
    const reason = truncate(err.message)
    const undetected = this.#adapter === null ? { vendor_candidates: this.#options.candidates.map(({ adapter }) => adapter.name) } : {}
    const internal = err.closeCode === CloseCode.INTERNAL_ERROR
    this.#options.metrics.inputErrors.inc({ vendor: this.#adapter?.name ?? 'undetected', reason: CLOSE_REASONS[err.closeCode] ?? 'other' })
    this.#log.warn({ close_code: err.closeCode, reason, ...undetected }, internal ? 'closing connection: internal error' : 'closing connection: bad input')
    this.#end(internal ? 'internal_error' : 'protocol_error')
    const explanation = this.#decoder?.rejected?.(err)
    if (explanation !== undefined) this.#socket.send(explanation)
    this.#socket.close(err.closeCode, reason)
  }

  /** Ends the call for a reason of the gateway's own and closes its connection. */
  hangup (reason: string, closeCode: number, closeReason: string): void {
    this.#end(reason)
    this.#socket.close(closeCode, closeReason)
  }

  /** The socket has closed, whoever closed it. */
  closed (code: number): void {
    if (this.#state === 'awaiting-start') this.#log.info({ close_code: code }, 'connection closed before start')
    this.#end('disconnected')
  }

  /** One message from the call's playback channel. */
  playback (message: Buffer): void {
    if (this.#playback === null) this.#options.metrics.playbackDropped.inc({ reason: 'call_ended' })
    else this.#playback.receive(message)
  }

  pong (): void {
    this.#pongDueAt = null
  }

  /** Pings, and ends a connection whose pong is overdue or that has sent nothing for too long. */
  keepalive (now: number, { pingIntervalMs, pongTimeoutMs, idleTimeoutMs }: KeepaliveSettings): void {
    if (this.#state === 'ended') return
    if (this.#pongDueAt !== null && now >= this.#pongDueAt) {
      this.#endConnection('keepalive_timeout')
      this.#socket.terminate()
    } else if (this.#messages !== this.#messagesSeen) {
      this.#messagesSeen = this.#messages
      this.#quietSince = now
    } else if (now - this.#quietSince >= idleTimeoutMs) {
      this.#endConnection('idle')
      this.#socket.close(CloseCode.NORMAL, 'idle')
    } else if (this.#pongDueAt === null && now - this.#lastPingAt >= pingIntervalMs) {
      // One ping at a time: a new one must not push back the deadline of the one still unanswered.
      this.#lastPingAt = now
      this.#pongDueAt = now + pongTimeoutMs
      this.#socket.ping()
    }
  }

  /** Adds what the call has counted since the last fold to its metrics. */
  fold (): void {
    this.#stats?.fold()
  }

  snapshot (): CallSnapshot {
    const info = this.#info
    const stats = this.#stats
    return {
      state: this.#state,
      vendor: this.#adapter?.name ?? null,
      interaction_id: info?.interactionId ?? null,
      tenant_id: info?.tenantId ?? null,
      stream_id: info?.streamId ?? null,
      sample_rate: info?.sampleRate ?? null,
      started_at: info === null ? null : this.#startedAt,
      frames: stats?.frames ?? 0,
      bytes: stats?.bytes ?? 0,
      frames_lost: stats?.framesLost ?? 0,
      gaps: stats?.gaps ?? 0,
      duplicates: stats?.duplicates ?? 0,
      reordered: stats?.reordered ?? 0
    }
  }

  #use ({ adapter, context }: Candidate): void {
    this.#adapter = adapter
    this.#decoder = adapter.createDecoder(context)
    this.#log = this.#options.log.child({ vendor: adapter.name })
  }

  #detect (data: Buffer, isBinary: boolean): void {
    const verdict = this.#detector.offer(data, isBinary)
    if ('stop' in verdict) {
      this.#stop(null)
      return
    }
    this.#held.push([data, isBinary])
    if ('wait' in verdict) return
    this.#use(verdict.vendor)
    const held = this.#held
    this.#held = []
    for (const [message, binary] of held) this.receive(message, binary)
  }

  #handle (event: InboundEvent): void {
    switch (event.kind) {
      case 'media':
        this.#audio(event.pcm, event.vendorSeq, event.timestampMs, event.chunk ?? null)
        return
      case 'start':
        this.#start(event.start)
        return
      case 'dtmf':
        this.#live('dtmf')
        this.#publishEvent({ type: 'call.dtmf', ...this.#identity(), digit: event.digit, duration_ms: event.durationMs })
        return
      case 'mark':
        this.#live('mark')
        this.#markPlayed(event.name)
        return
      case 'stop':
        this.#stop(event.reason)
        return
      case 'connected':
        if (this.#state !== 'awaiting-start') this.#log.debug('connected after start, ignored')
        return
      case 'unknown':
        this.#log.debug({ event: event.event }, 'unknown event, ignored')
    }
  }

  /** Refuses what only a started call may receive. */
  #live (what: string): void {
    if (this.#state !== 'live') throw new ProtocolError(CloseCode.POLICY_VIOLATION, `${what} before start`)
  }

  #start (start: StreamStart): void {
    if (this.#state !== 'awaiting-start') throw new ProtocolError(CloseCode.POLICY_VIOLATION, 'second start on one stream')
    if (start.declaredSampleRate !== null && start.declaredSampleRate !== start.sampleRate) {
      this.#log.warn({ sample_rate: start.sampleRate, declared_sample_rate: start.declaredSampleRate, interaction_id: start.callId },
        'the start message names another sample rate than the call uses; using the call\'s')
    }
    const { bus, metrics, owner } = this.#options
    const vendor = this.#adapter?.name ?? 'unknown'
    this.#info = {
      interactionId: start.callId,
      tenantId: start.tenantId,
      vendor,
      streamId: start.streamId,
      sampleRate: start.sampleRate,
      from: start.from,
      to: start.to,
      customParameters: start.customParameters
    }
    if (!owner.claim(this)) {
      this.#info = null
      throw new ProtocolError(CloseCode.POLICY_VIOLATION, `call ${start.callId} is already streaming to this gateway`)
    }
    this.#state = 'live'
    this.#startedAt = Date.now()
    this.#labels = metrics.callLabels(vendor, start.tenantId)
    this.#stats = new CallStats(metrics, this.#labels)
    this.#outcome = this.#publishOutcome(this.#stats)
    this.#log = this.#options.log.child({ interaction_id: start.callId, tenant_id: start.tenantId, vendor })
    // Subscribed before call.start goes out, so a worker that answers call.start at once is heard.
    this.#startPlayback()
    this.#publishEvent({
      type: 'call.start',
      ...this.#identity(),
      sample_rate: start.sampleRate,
      encoding: 'pcm_s16le',
      channels: 1,
      from: start.from,
      to: start.to,
      custom_parameters: start.customParameters,
      audio_channel: bus.audioChannel(start.callId)
    })
    metrics.callsStarted.inc(this.#labels)
    metrics.callsActive.inc(this.#labels)
    this.#log.info(this.#summary(), 'call started')
    owner.started(this)
    const acknowledgement = this.#decoder?.started?.(start)
    if (acknowledgement !== undefined) this.#socket.send(acknowledgement)
  }

  #publishOutcome (stats: CallStats): PublishOutcome {
    return {
      published: () => stats.published(),
      failed: (err) => {
        if (stats.lost(err)) this.#log.warn({ err }, 'audio frame not published to redis')
        if (this.#stopEvent !== null) this.#stopEvent.frames_lost = stats.framesLost
      }
    }
  }

  #startPlayback (): void {
    const encoder = this.#adapter?.outbound
    const info = this.#info
    if (encoder === undefined || info === null) return
    const { bus, metrics, playback } = this.#options
    this.#playback = new Playback({
      host: {
        send: (text) => this.#socket.send(text),
        hangup: () => this.hangup('hangup', CloseCode.NORMAL, 'hangup'),
        markCleared: (name) => this.#publishEvent({ type: 'call.mark', ...this.#identity(), name, cleared: true })
      },
      encoder,
      callSampleRate: info.sampleRate,
      streamId: info.streamId,
      leadMs: playback.leadMs,
      maxBufferMs: playback.maxBufferMs,
      metrics,
      vendor: info.vendor,
      log: this.#log
    })
    bus.subscribePlayback(info.interactionId)
  }

  /**
   * Publishes one frame of PCM s16le; a null timestampMs is derived from the audio so far. `chunk` is the
   * vendor's media counter, which gap accounting follows.
   */
  #audio (pcm: Buffer, vendorSeq: number | null, timestampMs: number | null, chunk: number | null): void {
    const info = this.#info
    const stats = this.#stats
    if (info === null || stats === null || this.#outcome === null) throw new ProtocolError(CloseCode.POLICY_VIOLATION, 'media before start')
    const header: AudioFrameHeader = {
      interaction_id: info.interactionId,
      seq: stats.frames + 1,
      vendor_seq: vendorSeq,
      timestamp_ms: timestampMs ?? Math.floor(stats.bytes / ((info.sampleRate * 2) / 1000)),
      sample_rate: info.sampleRate,
      encoding: 'pcm_s16le',
      channels: 1
    }
    stats.frame(pcm.length, chunk)
    this.#options.bus.publishAudio(header, pcm, this.#outcome)
  }

  /** The vendor echoed a mark: it played the audio queued before it. */
  #markPlayed (name: string): void {
    if (this.#playback !== null && !this.#playback.markPlayed(name)) {
      this.#log.debug({ name }, 'mark echoed after clear reported it, ignored')
      return
    }
    this.#publishEvent({ type: 'call.mark', ...this.#identity(), name, cleared: false })
  }

  #stop (reason: string | null): void {
    if (this.#state === 'awaiting-start') this.#log.info('stop before start')
    this.#end(reason ?? 'stopped')
    this.#socket.close(CloseCode.NORMAL, 'stream stopped')
  }

  /** Ends the call for a reason of the gateway's own; the caller closes the socket. */
  #endConnection (reason: string): void {
    this.#log.info({ reason }, 'ending connection')
    this.#end(reason)
  }

  /** A message after the end: ignored, and counted when it was audio for the call. */
  #afterEnd (data: Buffer, isBinary: boolean): void {
    this.#log.debug('message after the stream ended, ignored')
    if (this.#stats === null || this.#decoder === null) return
    try {
      if (this.#decoder.decode(data, isBinary, false).event.kind === 'media') this.#stats.afterEnd()
    } catch {
      // A message the call would have refused is ignored like any other now.
    }
  }

  /** Publishes call.stop once, however the call ends; later calls are no-ops. */
  #end (reason: string): void {
    if (this.#state === 'ended') return
    const wasLive = this.#state === 'live'
    this.#state = 'ended'
    const stats = this.#stats
    const info = this.#info
    if (!wasLive || stats === null || info === null) return
    this.#endReason = reason
    this.#playback?.stop()
    this.#stopEvent = {
      type: 'call.stop',
      ...this.#identity(),
      reason,
      frames: stats.frames,
      bytes: stats.bytes,
      duration_ms: Date.now() - this.#startedAt,
      frames_lost: stats.framesLost,
      gaps: stats.gaps,
      duplicates: stats.duplicates,
      reordered: stats.reordered
    }
    this.#publishEvent(this.#stopEvent)
    stats.close()
    const { metrics, bus, owner } = this.#options
    metrics.callsActive.dec(this.#labels)
    metrics.callsEnded.inc({ ...this.#labels, reason: metrics.endReason(reason) })
    this.#log.info(this.#summary(), 'call ended')
    if (this.#playback !== null) bus.unsubscribePlayback(info.interactionId)
    owner.ended(this)
  }

  #identity (): { interaction_id: string, tenant_id: string | null, vendor: string, stream_id: string | null, ts: number } {
    const info = this.#info as CallInfo
    return { interaction_id: info.interactionId, tenant_id: info.tenantId, vendor: info.vendor, stream_id: info.streamId, ts: Date.now() }
  }

  /** The start and end lines carry these besides the bound identity, so one line tells the whole call. */
  #summary (): Record<string, unknown> {
    const info = this.#info as CallInfo
    const stats = this.#stats as CallStats
    return {
      stream_id: info.streamId,
      sample_rate: info.sampleRate,
      frames: stats.frames,
      bytes: stats.bytes,
      frames_lost: stats.framesLost,
      gaps: stats.gaps,
      duplicates: stats.duplicates,
      reordered: stats.reordered,
      duration_ms: Date.now() - this.#startedAt,
      reason: this.#endReason
    }
  }

  #publishEvent (event: CallEvent): void {
    this.#options.bus.publishEvent(event).catch((err: Error) => {
      this.#log.warn({ err, event: event.type }, 'call event not published to redis')
    })
  }
}

function truncate (reason: string): string {
  if (Buffer.byteLength(reason) <= MAX_CLOSE_REASON) return reason
  let cut = reason.slice(0, MAX_CLOSE_REASON - 3)
  while (Buffer.byteLength(cut) > MAX_CLOSE_REASON - 3) cut = cut.slice(0, -1)
  return `${cut}...`
}
