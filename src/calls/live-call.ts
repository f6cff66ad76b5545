import type { AudioFrameEncoder, AudioFrameHeader } from '../bus/audio-frame.js'
import { PublishDropped, type Bus } from '../bus/bus.js'
import { CONTRACT_VERSION, callTotals, type CallEvent, type CallStopEvent, type PauseSource, type TrackTotals } from '../bus/call-events.js'
import { controlCommand } from '../bus/playback-message.js'
import { trackRefs, type CallRef } from '../bus/channels.js'
import { tenancyOf } from '../auth/principal.js'
import { resolveTenant } from '../auth/tenancy.js'
import { pcmBytesPerMs } from '../audio/pcm.js'
import { debugEnabled, type Log } from '../logger.js'
import type { Metrics } from '../metrics.js'
import type { Track } from '../track.js'
import type { InboundEvent, StreamStart } from '../vendors/inbound-event.js'
import { CloseCode, ProtocolError } from '../vendors/protocol-error.js'
import { newMediaScan, type MediaScan } from '../vendors/media-scanner.js'
import type { MediaFastPath, OutboundEncoder, StreamContext, StreamDecoder, VendorAdapter } from '../vendors/vendor-adapter.js'
import { VendorDetector, type Candidate } from '../vendors/vendor-detector.js'
import { CallStats } from './call-stats.js'
import { Playback, type PlaybackSettings, type PlaybackStatus } from './playback.js'
import { TokenBucket } from './token-bucket.js'

/** The socket of a vendor connection, as its call uses it. */
export interface CallSocket {
  send (data: string | Buffer): void
  close (code: number, reason: string): void
  terminate (): void
  ping (): void
  /** Stops reading from the peer. */
  pause (): void
}

/** What a call asks of the registry that holds it. */
export interface CallOwner {
  /** Takes the call on this replica, at once: false when another stream of it is live here. */
  reserve (call: LiveCall, ref: CallRef): boolean
  /**
   * Claims the reserved call across replicas: `owned`, `duplicate` when an older stream holds it, or `unconfirmed`
   * when Redis cannot say now (the claim is then retried until it can).
   */
  claim (call: LiveCall): Promise<ClaimResult>
  /** The call has started: call.start is published and the vendor answered. */
  started (call: LiveCall): void
  /** The connection's call has ended (`started`: it had published call.start and now call.stop); its claim goes. */
  ended (call: LiveCall, started: boolean): void
}

export type ClaimResult = 'owned' | 'duplicate' | 'unconfirmed'

/**
 * Sees each frame of PCM a call publishes, pcm[0, bytes), as it is published (never a withheld one): a dashboard's
 * levels and listen-in. The buffer is the call's to reuse once audio() returns.
 */
export interface AudioTap {
  audio (track: Track, pcm: Buffer, bytes: number): void
}

export interface LiveCallOptions {
  socket: CallSocket
  /** The vendors this connection may be: one on a vendor's own route, every admitted one on /v1/ingest. */
  candidates: Candidate[]
  /** The connection's logger (it carries the request id); the call adds its vendor or candidates to it. */
  log: Log
  owner: CallOwner
  bus: Bus
  metrics: Metrics
  playback: PlaybackSettings
  inbound: InboundLimits
}

/** What the keepalive sweep checks on every connection. */
export interface KeepaliveSettings {
  pingIntervalMs: number
  pongTimeoutMs: number
  idleTimeoutMs: number
  /** A connection with no accepted start this long after its upgrade is closed with 1008. */
  startTimeoutMs: number
}

/** What a connection may send: a connection above either rate for longer than INBOUND_BURST_MS is closed with 1008. */
export interface InboundLimits {
  /** Decoded audio, as a multiple of real time. */
  maxAudioSpeed: number
  /** Every message, from the upgrade on. */
  maxMessagesPerS: number
}

/** The limits a connection is closed for, as the connectionsLimited metric names them. */
export type Limit = 'start_timeout' | 'message_rate' | 'audio_rate'

/** What a vendor's start message tells about a call, normalized, with its vendor and its tenant. */
export interface CallInfo extends Omit<StreamStart, 'callId' | 'accountId' | 'declaredSampleRate' | 'tracks'>, CallRef {
  interactionId: string
  /** From the connection's credential (src/auth/tenancy.ts); null only when nothing names one. */
  tenantId: string | null
  /** Whether a credential vouches for the tenant; without, the tenant is the account the start named. */
  tenantVerified: boolean
  vendor: string
  /** The call's tracks, one or two (docs/redis-contract.md, "Tracks"). */
  tracks: readonly Track[]
}

/** One connection's call as a dashboard sees it (LiveCalls.snapshot): the call's counts, summed over its tracks, and more. */
export interface CallSnapshot extends TrackTotals {
  /** `claiming`: the start was accepted, and the call waits to be sure no other stream holds it. */
  state: 'awaiting-start' | 'claiming' | 'live' | 'ended'
  vendor: string | null
  interaction_id: string | null
  tenant_id: string | null
  stream_id: string | null
  sample_rate: number | null
  /** Epoch ms of the start message; null before it. */
  started_at: number | null
  /** The counts per track, once the call has started. */
  tracks: Partial<Record<Track, TrackTotals>>
  /** While the call's audio is withheld: since when (epoch ms), and who paused it. */
  paused: { since: number, source: PauseSource } | null
  /** The call's outbound audio; null for a call that plays none. */
  playback: PlaybackStatus | null
  /** Why and when (epoch ms) the call ended; null until it has. */
  end_reason: string | null
  ended_at: number | null
}

/** What a call has once its start message is accepted. */
interface Started {
  info: CallInfo
  /** Each track's frames go out under its own ref (the call's own for one track), counted apart. */
  tracks: Map<Track, TrackState>
  /** The call's one track, for media that names none; null when it has two. */
  onlyTrack: TrackState | null
  labels: Record<string, string>
  startedAt: number
  /** PCM bytes the call may still send before it is faster than INBOUND_MAX_AUDIO_SPEED. */
  audioRate: TokenBucket
}

/** A pause under way: since when, who paused, and what it has withheld so far. */
interface Pause {
  since: number
  source: PauseSource
  frames: number
  bytes: number
}

interface TrackState {
  track: Track
  ref: CallRef
  stats: CallStats
  /** The track's audio messages, header encoded once (pub/sub); null when frames go out as header and PCM (Streams). */
  encoder: AudioFrameEncoder | null
}

/** How long a start waits for Redis to confirm the claim before the call goes on unconfirmed. */
const CLAIM_WAIT_MS = 1000
/** Messages, and their bytes, that a call holds while its claim is checked; a stream that sends more is refused. */
const MAX_HELD_WHILE_CLAIMING = 200
const MAX_HELD_BYTES_WHILE_CLAIMING = 1024 * 1024
/**
 * How long a connection may send faster than its inbound limits: the token buckets hold this much at the limit, so a
 * vendor's catch-up after a network hiccup passes.
 */
const INBOUND_BURST_MS = 5000
/** A connection closed for a limit is read no further, and dropped this long after its close frame went out. */
const LIMITED_DROP_MS = 1000

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

  /** Until the vendor is settled; then let go, with the decoders it tried. */
  #detector: VendorDetector | null
  #adapter: VendorAdapter | null = null
  #context: StreamContext | null = null
  #decoder: StreamDecoder | null = null
  /** The vendor's fast path for media, with the reading it reuses; null without one, or at debug level. */
  #fast: { path: MediaFastPath, scan: MediaScan } | null = null
  /** What the fast path decodes a frame's PCM into, before it is copied into the frame: the call's, reused. */
  #pcm: Buffer | null = null
  /** Messages held while detection is undecided or the claim is checked, replayed once either is settled. */
  #held: Array<[Buffer, boolean]> = []
  /** Bytes held while the claim is checked, for its bound. */
  #heldBytes = 0

  /** The start while its claim is checked, and how the connection ended meanwhile, to be told once it is answered. */
  #claiming: { start: StreamStart, info: CallInfo } | null = null
  /** The call whose playback this connection subscribed, until its end gives the subscription up. */
  #subscribed: CallInfo | null = null
  #endedWhileClaiming: (() => void) | null = null
  #call: Started | null = null
  /** call.stop while it waits to be sent: frames lost meanwhile still show in it. */
  #stopEvent: CallStopEvent | null = null
  #endReason: string | null = null
  /** Events the bus dropped by policy: only the first is logged. */
  #eventsDropped = 0
  /** Ended by the gateway (a hang-up, shutdown) while the vendor may still be sending. */
  #hungUp = false
  /** Outbound audio, for two-way vendors. */
  #playback: Playback | null = null
  /** The call's playback encoder, for what the vendor expects before the gateway closes its stream. */
  #encoder: OutboundEncoder | null = null
  /** While the call's audio is withheld (a payment moment): since when, who paused it, and what it has withheld. */
  #paused: Pause | null = null
  /** Who sees the call's published audio; null, the frame path's only cost, while nobody watches. */
  #tap: AudioTap | null = null
  #endedAt: number | null = null

  /** Messages received, and the count the keepalive last saw and when it last changed: idle is no change. */
  #messages = 0
  #messagesSeen = 0
  /** Bytes received, for the line that tells why a connection was limited. */
  #bytes = 0
  readonly #openedAt = Date.now()
  #quietSince = this.#openedAt
  #lastPingAt = this.#openedAt
  /** Messages the connection may still send before it is over INBOUND_MAX_MESSAGES_PER_S; the sweep refills it. */
  readonly #messageRate: TokenBucket
  #refilledAt = this.#openedAt
  /** When the pong to the last ping is overdue; null when none is awaited. */
  #pongDueAt: number | null = null

  constructor (options: LiveCallOptions) {
    this.#options = options
    this.#socket = options.socket
    this.#log = options.log
    this.#debug = debugEnabled(options.log)
    this.#messageRate = new TokenBucket(options.inbound.maxMessagesPerS / 1000, INBOUND_BURST_MS)
    const detector = new VendorDetector(options.candidates)
    const decided = detector.decided
    this.#detector = decided === null ? detector : null
    // Every line names the vendor, or while it is being detected the candidates, so a grep for one finds them all.
    if (decided !== null) this.#use(decided)
    else this.#log = options.log.child({ vendor_candidates: options.candidates.map(({ adapter }) => adapter.name) })
    this.#log.info('connection opened')
  }

  /** The call's identity once its start message is accepted; null before. */
  get info (): CallInfo | null {
    return this.#call?.info ?? this.#claiming?.info ?? null
  }

  /** True while the start waits for its claim to be answered. */
  get claiming (): boolean {
    return this.#state === 'claiming'
  }

  /** One WebSocket message from the vendor; a refused one closes the connection, never the process. */
  receive (data: Buffer, isBinary: boolean): void {
    this.#messages++
    this.#bytes += data.length
    if (this.#messageRate.take(1)) this.#receive(data, isBinary)
    else this.#limit('message_rate', `more than ${this.#options.inbound.maxMessagesPerS} messages a second`)
  }

  #receive (data: Buffer, isBinary: boolean): void {
    if (this.#state === 'ended') {
      this.#afterEnd(data, isBinary)
      return
    }
    if (this.#state === 'claiming') {
      this.#held.push([data, isBinary])
      this.#heldBytes += data.length
      if (this.#held.length > MAX_HELD_WHILE_CLAIMING || this.#heldBytes > MAX_HELD_BYTES_WHILE_CLAIMING) {
        this.#claiming = null
        this.#refuse(new ProtocolError(CloseCode.POLICY_VIOLATION, 'too many messages before the call was accepted'))
      }
      return
    }
    try {
      if (this.#decoder === null) {
        this.#detect(data, isBinary)
        return
      }
      const fast = this.#fast
      if (fast !== null && !isBinary && this.#state === 'live' && this.#call?.onlyTrack != null && fast.path.scan(data, fast.scan)) {
        const { scan } = fast
        const pcm = this.#pcmFor(((scan.payloadEnd - scan.payloadStart) * 3) >>> 2)
        const bytes = fast.path.decodePcm(data, scan, pcm)
        // A payload its decoder refuses goes the full way, which says why.
        if (bytes >= 0) {
          this.#media(this.#call, this.#call.onlyTrack, pcm, bytes, scan.vendorSeq, scan.timestampMs, scan.chunk)
          return
        }
      }
      const decoded = this.#decoder.decode(data, isBinary, this.#debug)
      if (decoded.unknownFields !== undefined && decoded.unknownFields.length > 0) {
        this.#log.debug({ fields: decoded.unknownFields }, 'unknown fields, ignored')
      }
      const { event, also = [], reply } = decoded
      const stop = event.kind === 'stop'
      if (reply !== undefined && stop) this.#socket.send(reply)
      this.#handle(event)
      for (const more of also) if (this.#stateNow() === 'live') this.#handle(more)
      if (reply !== undefined && !stop && this.#stateNow() !== 'ended') this.#socket.send(reply)
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
    // Only the socket fails while the claim is checked (messages wait); the accepted start still becomes a call first.
    if (this.#state === 'claiming') {
      this.#endedWhileClaiming ??= () => this.reject(err)
      return
    }
    this.#refuse(err)
  }

  /** Closes a connection that passed one of its limits with 1008; like a refusal, but counted apart from bad input. */
  #limit (limit: Limit, reason: string): void {
    if (this.#state === 'ended') return
    if (this.#state === 'claiming') {
      this.#endedWhileClaiming ??= () => this.#limit(limit, reason)
      return
    }
    this.#refuse(new ProtocolError(CloseCode.POLICY_VIOLATION, reason), limit)
  }

  /** The log line has the whole reason; the close frame's is cut to fit. */
  #refuse (err: ProtocolError, limit: Limit | null = null): void {
    const vendor = this.#adapter?.name ?? 'undetected'
    const internal = err.closeCode === CloseCode.INTERNAL_ERROR
    const { metrics } = this.#options
    if (limit === null) {
      metrics.inputErrors.inc({ vendor, reason: CLOSE_REASONS[err.closeCode] ?? 'other' })
      this.#log.warn({ close_code: err.closeCode, reason: err.message }, internal ? 'closing connection: internal error' : 'closing connection: bad input')
    } else {
      metrics.connectionsLimited.inc({ vendor, reason: limit })
      this.#log.warn({ close_code: err.closeCode, reason: err.message, limit, messages: this.#messages, bytes: this.#bytes }, 'closing connection: limit passed')
    }
    this.#end(internal ? 'internal_error' : 'protocol_error')
    const explanation = this.#decoder?.rejected?.(err)
    if (explanation !== undefined) this.#socket.send(explanation)
    this.#socket.close(err.closeCode, truncate(err.message))
    if (limit !== null) this.#drop()
  }

  /**
   * A limited peer is not trusted with the close handshake: a flood has megabytes on the way, which the handshake
   * would read first, and a peer that never answers would keep its slot for ws's 30 s. So the connection is read no
   * further, and dropped once its close frame has had time to go out.
   */
  #drop (): void {
    this.#socket.pause()
    setTimeout(() => this.#socket.terminate(), LIMITED_DROP_MS).unref()
  }

  /** Ends the call for a reason of the gateway's own and closes its connection. */
  hangup (reason: string, closeCode: number, closeReason: string): void {
    if (this.#state !== 'ended') this.#hungUp = true
    // A vendor that expects to be told (AudioHook's disconnect) hears why before the close.
    const goodbye = this.#state === 'live' ? this.#encoder?.disconnect?.(this.#call?.info.streamId ?? null, reason) : undefined
    if (goodbye !== undefined) this.#socket.send(goodbye)
    this.#end(reason)
    this.#socket.close(closeCode, closeReason)
  }

  /** The socket has closed, whoever closed it. */
  closed (code: number): void {
    if (this.#state === 'claiming') {
      this.#endedWhileClaiming ??= () => this.closed(code)
      return
    }
    if (this.#state === 'awaiting-start') this.#log.info({ close_code: code }, 'connection closed before start')
    this.#end('disconnected')
  }

  /** One message from the call's playback (control) channel: pause and resume are the call's, the rest its playback's. */
  playback (message: Buffer): void {
    const control = controlCommand(message)
    if (control !== null && this.#state === 'live') {
      const streamId = this.#call?.info.streamId ?? null
      if (control === 'pause' && this.#pause('worker')) this.#tellVendor(this.#encoder?.pause?.(streamId))
      if (control === 'resume' && this.#resume('worker')) this.#tellVendor(this.#encoder?.resume?.(streamId))
      return
    }
    if (this.#playback !== null) this.#playback.receive(message)
    else this.#options.metrics.playbackDropped.inc({ reason: this.#state === 'live' ? 'not_played' : 'call_ended' })
  }

  pong (): void {
    this.#pongDueAt = null
  }

  /** Another stream holds this call's claim: this one ends. */
  claimLost (): void {
    if (this.#state !== 'live') return
    this.#log.warn('another stream holds this call\'s claim; ending this one')
    this.hangup('duplicate', CloseCode.POLICY_VIOLATION, `call ${this.#call?.info.interactionId ?? ''} is streaming elsewhere`)
  }

  /**
   * Refills the rate limits, pings, and ends a connection that has not started in time, whose pong is overdue or that
   * has sent nothing for too long.
   */
  keepalive (now: number, { pingIntervalMs, pongTimeoutMs, idleTimeoutMs, startTimeoutMs }: KeepaliveSettings): void {
    const elapsed = now - this.#refilledAt
    this.#refilledAt = now
    this.#messageRate.refill(elapsed)
    this.#call?.audioRate.refill(elapsed)
    if (this.#state === 'awaiting-start' && now - this.#openedAt >= startTimeoutMs) {
      this.#limit('start_timeout', `no start within ${startTimeoutMs} ms`)
    } else if (this.#pongDueAt !== null && now >= this.#pongDueAt) {
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
    for (const { stats } of this.#call?.tracks.values() ?? []) stats.fold()
  }

  /** Hands each published frame to `tap` from now on; null stops it. */
  watch (tap: AudioTap | null): void {
    this.#tap = tap
  }

  snapshot (): CallSnapshot {
    const info = this.info
    const tracks = this.#trackTotals()
    const paused = this.#paused
    return {
      state: this.#state,
      vendor: this.#adapter?.name ?? null,
      interaction_id: info?.interactionId ?? null,
      tenant_id: info?.tenantId ?? null,
      stream_id: info?.streamId ?? null,
      sample_rate: info?.sampleRate ?? null,
      started_at: this.#call?.startedAt ?? null,
      ...callTotals(tracks),
      tracks,
      paused: paused === null ? null : { since: paused.since, source: paused.source },
      playback: this.#playback?.status() ?? null,
      end_reason: this.#endReason,
      ended_at: this.#endedAt
    }
  }

  /** Each track's counts so far; none before the call has started. */
  #trackTotals (): Partial<Record<Track, TrackTotals>> {
    const tracks: Partial<Record<Track, TrackTotals>> = {}
    for (const [track, { stats }] of this.#call?.tracks ?? []) tracks[track] = stats.totals()
    return tracks
  }

  /** The state as it is now: handling a message can change it where the compiler does not look. */
  #stateNow (): CallSnapshot['state'] {
    return this.#state
  }

  #use ({ adapter, context }: Candidate): void {
    this.#adapter = adapter
    this.#context = context
    this.#decoder = adapter.createDecoder(context)
    this.#detector = null
    // At debug level every message goes through decode, which names the fields a schema does not.
    const fast = this.#decoder.fast
    this.#fast = fast === undefined || this.#debug ? null : { path: fast, scan: newMediaScan() }
    this.#log = this.#options.log.child({ vendor: adapter.name })
  }

  #detect (data: Buffer, isBinary: boolean): void {
    const verdict = (this.#detector as VendorDetector).offer(data, isBinary)
    if ('stop' in verdict) {
      this.#stop(null)
      return
    }
    this.#held.push([data, isBinary])
    if ('wait' in verdict) return
    this.#use(verdict.vendor)
    const held = this.#held
    this.#held = []
    for (const [message, binary] of held) this.#receive(message, binary)
  }

  #handle (event: InboundEvent): void {
    switch (event.kind) {
      case 'media': {
        const call = this.#live('media')
        this.#media(call, trackOf(call, event.track), event.pcm, event.pcm.length, event.vendorSeq, event.timestampMs, event.chunk ?? null)
        return
      }
      case 'pause':
        this.#live('pause')
        this.#pause('vendor')
        return
      case 'resume':
        this.#live('resume')
        this.#resume('vendor')
        return
      case 'start':
        this.#start(event.start)
        return
      case 'dtmf':
        this.#publishEvent({ type: 'call.dtmf', ...identity(this.#live('dtmf').info), digit: event.digit, duration_ms: event.durationMs })
        return
      case 'mark':
        this.#markPlayed(this.#live('mark').info, event.name)
        return
      case 'stop':
        this.#stop(event.reason)
        return
      case 'connected':
        if (this.#state !== 'awaiting-start') this.#log.debug('connected after start, ignored')
        return
      case 'vendor-error':
        this.#log.warn({ vendor_error: { code: event.code, title: event.title, detail: event.detail } }, 'the vendor reported an error; the call goes on')
        return
      case 'unknown':
        this.#log.debug({ event: event.event }, 'unknown event, ignored')
    }
  }

  /** The started call, for what only a started call may receive. */
  #live (what: string): Started {
    if (this.#state !== 'live' || this.#call === null) throw new ProtocolError(CloseCode.POLICY_VIOLATION, `${what} before start`)
    return this.#call
  }

  /** Checks the start, resolves its tenant, and claims the call; it goes live once the claim is answered. */
  #start (start: StreamStart): void {
    if (this.#state !== 'awaiting-start') throw new ProtocolError(CloseCode.POLICY_VIOLATION, 'second start on one stream')
    if (start.declaredSampleRate !== null && start.declaredSampleRate !== start.sampleRate) {
      this.#log.warn({ sample_rate: start.sampleRate, declared_sample_rate: start.declaredSampleRate, interaction_id: start.callId },
        'the start message names another sample rate than the call uses; using the call\'s')
    }
    const adapter = this.#adapter as VendorAdapter
    const tenant = resolveTenant(tenancyOf((this.#context as StreamContext).principal, adapter.ipAccounts ?? null), start.accountId)
    if ('refused' in tenant) throw new ProtocolError(CloseCode.POLICY_VIOLATION, tenant.refused)
    const tracks = start.tracks === undefined || start.tracks.length === 0 ? ['inbound' as const] : [...new Set(start.tracks)]
    const info: CallInfo = {
      interactionId: start.callId,
      tenantId: tenant.tenantId,
      tenantVerified: tenant.verified,
      vendor: adapter.name,
      streamId: start.streamId,
      sampleRate: start.sampleRate,
      from: start.from,
      to: start.to,
      customParameters: start.customParameters,
      epoch: Date.now(),
      tracks
    }
    const { owner } = this.#options
    if (!owner.reserve(this, info)) throw new ProtocolError(CloseCode.POLICY_VIOLATION, `call ${info.interactionId} is already streaming`)
    this.#state = 'claiming'
    this.#claiming = { start, info }
    this.#log = this.#options.log.child({ interaction_id: info.interactionId, tenant_id: info.tenantId, vendor: info.vendor })
    // Every call is subscribed to its playback (control) channel before call.start goes out, so a worker that answers
    // call.start at once is heard, with audio or a pause: it goes live once Redis has answered the claim and
    // acknowledged the subscription.
    const subscribed = this.#subscribePlayback(info)
    let claimed: ClaimResult = 'unconfirmed'
    const timer = setTimeout(() => this.#claimAnswered(claimed), CLAIM_WAIT_MS)
    const claim = owner.claim(this).then((result) => {
      claimed = result
      return result
    }, (err: unknown) => {
      this.#log.error({ err }, 'claiming the call failed')
      return 'unconfirmed' as const
    })
    Promise.all([claim, subscribed]).then(([result]) => {
      clearTimeout(timer)
      this.#claimAnswered(result)
    })
  }

  /** Subscribes the call's playback; #end gives the subscription up, whether or not the call went live. */
  #subscribePlayback (info: CallInfo): Promise<void> {
    this.#subscribed = info
    return this.#options.bus.subscribePlayback(info)
  }

  /** The claim's answer, or its stand-in when Redis takes too long; it may come once the call is already live. */
  #claimAnswered (result: ClaimResult): void {
    try {
      if (this.#state === 'live' && result === 'duplicate') this.claimLost()
      const claiming = this.#claiming
      if (this.#state !== 'claiming' || claiming === null) return
      this.#claiming = null
      if (result === 'duplicate') {
        this.#endedWhileClaiming = null
        this.#refuse(new ProtocolError(CloseCode.POLICY_VIOLATION, `call ${claiming.info.interactionId} is already streaming`))
        return
      }
      if (result === 'unconfirmed') this.#log.warn('call not claimed yet: redis has not answered; claiming it when it does')
      this.#goLive(claiming.start, claiming.info)
      const held = this.#held
      this.#held = []
      this.#heldBytes = 0
      for (const [message, binary] of held) this.#receive(message, binary)
      const ended = this.#endedWhileClaiming
      this.#endedWhileClaiming = null
      if (this.#stateNow() === 'live') ended?.()
    } catch (err) {
      this.#log.error({ err }, 'starting the call failed')
      this.#refuse(new ProtocolError(CloseCode.INTERNAL_ERROR, 'internal error'))
    }
  }

  #goLive (start: StreamStart, info: CallInfo): void {
    const { bus, metrics, owner, inbound } = this.#options
    const labels = metrics.callLabels(info.vendor, info.tenantId, info.tenantVerified)
    const tracks = new Map(trackRefs(info).map((ref, i) => {
      const track = info.tracks[i]
      const encoder = bus.frameEncoder(ref, { interaction_id: info.interactionId, tenant_id: info.tenantId, sample_rate: info.sampleRate, encoding: 'pcm_s16le', channels: 1, track: ref.track })
      return [track, { track, ref, stats: new CallStats(metrics, labels, (err, first) => this.#frameLost(track, err, first)), encoder }] as const
    }))
    // Each track is its own real time: a call with two may send twice the audio.
    const audioRate = new TokenBucket(inbound.maxAudioSpeed * pcmBytesPerMs(info.sampleRate) * tracks.size, INBOUND_BURST_MS)
    this.#call = { info, tracks, onlyTrack: tracks.size === 1 ? [...tracks.values()][0] : null, labels, startedAt: Date.now(), audioRate }
    this.#state = 'live'
    // Its playback was subscribed while the call was claimed (#start), so a worker answering call.start is heard.
    this.#startPlayback(start, info)
    this.#publishEvent({
      type: 'call.start',
      ...identity(info),
      sample_rate: info.sampleRate,
      encoding: 'pcm_s16le',
      channels: 1,
      from: info.from,
      to: info.to,
      custom_parameters: info.customParameters,
      ...bus.callRoutes(info),
      tracks: [...info.tracks],
      contract_version: CONTRACT_VERSION
    })
    metrics.callsStarted.inc(labels)
    metrics.callsActive.inc(labels)
    this.#log.info(this.#summary(this.#call), 'call started')
    const acknowledgement = this.#decoder?.started?.(start)
    if (acknowledgement !== undefined) this.#socket.send(acknowledgement)
    owner.started(this)
  }

  /** A frame never reached Redis: a track's first loss is logged, and a call.stop still waiting counts it. */
  #frameLost (track: Track, err: Error, first: boolean): void {
    if (first) this.#log.warn({ err, track }, 'audio frame not published to redis')
    const stop = this.#stopEvent
    if (stop === null) return
    stop.frames_lost += 1
    const counts = stop.tracks[track]
    if (counts !== undefined) counts.frames_lost += 1
  }

  #startPlayback (start: StreamStart, info: CallInfo): void {
    if (this.#adapter?.outbound === undefined) return
    const encoder = this.#decoder?.outbound?.(start) ?? this.#adapter.outbound
    this.#encoder = encoder
    const { metrics, playback } = this.#options
    this.#playback = new Playback({
      host: {
        send: (data) => this.#socket.send(data),
        hangup: () => this.hangup('hangup', CloseCode.NORMAL, 'hangup'),
        markCleared: (name) => this.#publishEvent({ type: 'call.mark', ...identity(info), name, cleared: true })
      },
      encoder,
      callSampleRate: info.sampleRate,
      streamId: info.streamId,
      ...playback,
      metrics,
      vendor: info.vendor,
      log: this.#log
    })
  }

  /** The call's buffer for the fast path's PCM, grown to hold `bytes`. */
  #pcmFor (bytes: number): Buffer {
    if (this.#pcm === null || this.#pcm.length < bytes) this.#pcm = Buffer.allocUnsafeSlow(Math.max(bytes, 2048))
    return this.#pcm
  }

  /** One frame of media, pcm[0, bytes): within the call's audio rate, published, or withheld while the call is paused. */
  #media (call: Started, track: TrackState, pcm: Buffer, bytes: number, vendorSeq: number | null, timestampMs: number | null, chunk: number | null): void {
    if (!call.audioRate.take(bytes)) this.#limit('audio_rate', `audio faster than ${this.#options.inbound.maxAudioSpeed} times real time`)
    else if (this.#paused === null) this.#audio(call.info, track, pcm, bytes, vendorSeq, timestampMs, chunk)
    else this.#withhold(track, bytes, chunk)
  }

  /**
   * Publishes one frame of PCM s16le, pcm[0, bytes); a null timestampMs is derived from the audio so far. `chunk` is
   * the vendor's media counter, which gap accounting follows.
   */
  #audio (info: CallInfo, { track, ref, stats, encoder }: TrackState, pcm: Buffer, bytes: number, vendorSeq: number | null, timestampMs: number | null, chunk: number | null): void {
    const seq = stats.frames + 1
    // Withheld audio keeps its place on the time line: a resumed call's timestamps go on from the pause's end.
    const timestamp = timestampMs ?? Math.floor((stats.bytes + stats.bytesWithheld) / pcmBytesPerMs(info.sampleRate))
    stats.frame(bytes, chunk)
    if (this.#tap !== null) this.#tap.audio(track, pcm, bytes)
    if (encoder !== null) {
      const message = encoder.frame(seq, vendorSeq, timestamp, bytes)
      pcm.copy(message, message.length - encoder.trailerBytes - bytes, 0, bytes)
      this.#options.bus.publishFrame(ref, message, stats)
      return
    }
    const header: AudioFrameHeader = {
      interaction_id: info.interactionId,
      tenant_id: info.tenantId,
      seq,
      vendor_seq: vendorSeq,
      timestamp_ms: timestamp,
      sample_rate: info.sampleRate,
      encoding: 'pcm_s16le',
      channels: 1
    }
    if (ref.track !== undefined) header.track = ref.track
    // The bus keeps a frame's PCM until Redis takes it: never the call's reused buffer.
    this.#options.bus.publishAudio(ref, header, pcm === this.#pcm ? Buffer.copyBytesFrom(pcm, 0, bytes) : pcm, stats)
  }

  /** A frame of a paused call: counted as withheld, and never handed to the bus, so no outage buffer holds it. */
  #withhold ({ stats }: TrackState, bytes: number, chunk: number | null): void {
    const paused = this.#paused as Pause
    stats.withhold(bytes, chunk)
    paused.frames++
    paused.bytes += bytes
  }

  /** A message for the vendor, when its encoder has one. */
  #tellVendor (message: string | undefined): void {
    if (message !== undefined) this.#socket.send(message)
  }

  /** Withholds the call's audio from now on; a pause while paused changes nothing (false). */
  #pause (source: PauseSource): boolean {
    if (this.#paused !== null) {
      this.#log.debug({ source, paused_by: this.#paused.source }, 'pause while paused, ignored')
      return false
    }
    this.#paused = { since: Date.now(), source, frames: 0, bytes: 0 }
    this.#log.info({ source }, 'call paused: audio withheld from redis')
    this.#publishEvent({ type: 'call.paused', ...identity((this.#call as Started).info), source })
    return true
  }

  /** Ends the pause; a resume while not paused changes nothing (false). */
  #resume (source: PauseSource): boolean {
    const paused = this.#paused
    if (paused === null) {
      this.#log.debug({ source }, 'resume while not paused, ignored')
      return false
    }
    this.#paused = null
    const summary = { paused_ms: Date.now() - paused.since, frames_withheld: paused.frames, bytes_withheld: paused.bytes }
    this.#log.info({ source, ...summary }, 'call resumed')
    this.#publishEvent({ type: 'call.resumed', ...identity((this.#call as Started).info), source, ...summary })
    return true
  }

  /** The vendor echoed a mark: it played the audio queued before it. */
  #markPlayed (info: CallInfo, name: string): void {
    if (this.#playback !== null && !this.#playback.markPlayed(name)) {
      this.#log.debug({ name }, 'mark echoed after clear reported it, ignored')
      return
    }
    this.#publishEvent({ type: 'call.mark', ...identity(info), name, cleared: false })
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

  /** A message after the end: ignored, and counted when it was audio the vendor sent after a hang-up. */
  #afterEnd (data: Buffer, isBinary: boolean): void {
    this.#log.debug('message after the stream ended, ignored')
    if (!this.#hungUp || this.#call === null || this.#decoder === null) return
    try {
      const { event, also = [] } = this.#decoder.decode(data, isBinary, false)
      for (const each of [event, ...also]) if (each.kind === 'media') trackOf(this.#call, each.track).stats.afterEnd()
    } catch {
      // A message the call would have refused is ignored like any other now.
    }
  }

  /** Publishes call.stop once, however the call ends; later calls are no-ops. */
  #end (reason: string): void {
    if (this.#state === 'ended') return
    const was = this.#state
    this.#state = 'ended'
    this.#endedAt = Date.now()
    if (was === 'awaiting-start') return
    try {
      const call = this.#call
      if (was === 'live' && call !== null) this.#stopCall(call, reason)
    } finally {
      if (this.#subscribed !== null) this.#options.bus.unsubscribePlayback(this.#subscribed)
      this.#subscribed = null
      this.#options.owner.ended(this, was === 'live')
    }
  }

  #stopCall (call: Started, reason: string): void {
    this.#endReason = reason
    this.#playback?.stop()
    const { info, labels, startedAt } = call
    const tracks = this.#trackTotals()
    const totals = callTotals(tracks)
    this.#stopEvent = {
      type: 'call.stop',
      ...identity(info),
      reason,
      duration_ms: Date.now() - startedAt,
      ...totals,
      tracks
    }
    this.#publishEvent(this.#stopEvent)
    for (const { stats } of call.tracks.values()) stats.close()
    const { metrics } = this.#options
    metrics.callsActive.dec(labels)
    metrics.callsEnded.inc({ ...labels, reason: metrics.endReason(reason) })
    this.#log.info(this.#summary(call), 'call ended')
  }

  /** The start and end lines carry these besides the bound identity, so one line tells the whole call. */
  #summary ({ info, tracks, startedAt }: Started): Record<string, unknown> {
    const byTrack = this.#trackTotals()
    return {
      stream_id: info.streamId,
      sample_rate: info.sampleRate,
      ...callTotals(byTrack),
      // A call with two tracks tells each one's counts too.
      ...(tracks.size > 1 ? { tracks: byTrack } : {}),
      duration_ms: Date.now() - startedAt,
      reason: this.#endReason
    }
  }

  /** Events go out only once the call has its info: from call.start on. */
  #publishEvent (event: CallEvent): void {
    this.#options.bus.publishEvent(this.info as CallInfo, event).catch((err: Error) => {
      // The bus counts every event it drops; a flood of them is one line per call, not one per event.
      if (err instanceof PublishDropped && this.#eventsDropped++ > 0) return
      this.#log.warn({ err, event: event.type }, 'call event not published to redis')
    })
  }
}

/** The track a media event is for: its own, which the start announced, or the call's only one. */
function trackOf ({ tracks, onlyTrack }: Started, track: Track | undefined): TrackState {
  if (track === undefined) {
    if (onlyTrack !== null) return onlyTrack
    throw new ProtocolError(CloseCode.POLICY_VIOLATION, 'media without its track in a call with two')
  }
  const state = tracks.get(track)
  if (state === undefined) throw new ProtocolError(CloseCode.POLICY_VIOLATION, `media on track ${track}, which the stream's start did not announce`)
  return state
}

/** The fields every call event starts with. */
function identity (info: CallInfo): { interaction_id: string, tenant_id: string | null, tenant_verified: boolean, vendor: string, stream_id: string | null, ts: number } {
  return { interaction_id: info.interactionId, tenant_id: info.tenantId, tenant_verified: info.tenantVerified, vendor: info.vendor, stream_id: info.streamId, ts: Date.now() }
}

function truncate (reason: string): string {
  if (Buffer.byteLength(reason) <= MAX_CLOSE_REASON) return reason
  let cut = reason.slice(0, MAX_CLOSE_REASON - 3)
  while (Buffer.byteLength(cut) > MAX_CLOSE_REASON - 3) cut = cut.slice(0, -1)
  return `${cut}...`
}
