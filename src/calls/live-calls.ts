import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { hostname } from 'node:os'
import type { WebSocket } from 'ws'
import type { Bus } from '../bus/bus.js'
import { callTag, type CallRef } from '../bus/channels.js'
import type { Log } from '../logger.js'
import type { Metrics } from '../metrics.js'
import { CloseCode, ProtocolError } from '../vendors/protocol-error.js'
import type { Candidate } from '../vendors/vendor-detector.js'
import { LiveCall, type CallOwner, type CallSnapshot, type ClaimResult, type InboundLimits, type KeepaliveSettings } from './live-call.js'
import type { PlaybackSettings } from './playback.js'

export interface LiveCallsOptions {
  bus: Bus
  metrics: Metrics
  /** The process's logger, for the drain. */
  log: Log
  /** Connections this process holds at most; admission refuses beyond it. */
  maxCalls: number
  keepalive: KeepaliveSettings
  inbound: InboundLimits
  playback: PlaybackSettings
  /** How long a claim outlives its last renewal: a replica that dies without releasing its calls frees them then. */
  claimTtlMs: number
}

/** The sweep runs at least this often, so a start deadline fires promptly and the rate limits refill smoothly. */
const MAX_SWEEP_MS = 500

/** Why a new connection is refused: the process is shutting down, or full. */
export type Refusal = 'shutting_down' | 'max_calls'

interface LiveCallsEvents {
  /** A call's start message was accepted and call.start published. */
  start: [call: LiveCall]
  /** A call ended and call.stop was published. */
  end: [call: LiveCall]
}

/** A call's claim: the call, its name on Redis, and this replica's token for it. */
interface Claim {
  call: LiveCall
  ref: CallRef
  token: string
}

/**
 * The live calls of this process, one LiveCall per vendor connection: the one place that knows them all. It
 * admits connections (MAX_CONCURRENT_CALLS), keeps one stream per call, (tenant, interaction_id), on this replica and
 * through claims in Redis across replicas, runs every connection's keepalive, routes playback from the bus to its
 * call, folds the calls' counts into the metrics at scrape, and drains on shutdown. It emits `start` and `end` for
 * whoever wants to follow calls.
 */
export class LiveCalls extends EventEmitter<LiveCallsEvents> {
  /** Every open connection, started or not: admission, keepalive and the drain count them all. */
  readonly #connections = new Set<LiveCall>()
  /** Claimed calls (starting or live) by call tag, and each call's claim. */
  readonly #byTag = new Map<string, Claim>()
  readonly #claims = new Map<LiveCall, Claim>()
  /** Unique to this process; with a counter, it makes each call's claim token. */
  readonly #replica = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`
  #claimed = 0
  readonly #options: LiveCallsOptions
  readonly #owner: CallOwner
  readonly #sweeper: NodeJS.Timeout
  readonly #renewer: NodeJS.Timeout
  /** Connections whose socket closed while their call was being claimed: they stay counted until it ends. */
  readonly #closedWhileClaiming = new Set<LiveCall>()
  #accepting = true
  #emptied: Array<() => void> = []

  constructor (options: LiveCallsOptions) {
    super()
    this.#options = options
    this.#owner = {
      reserve: (call, ref) => this.#reserve(call, ref),
      claim: (call) => this.#claim(call),
      started: (call) => this.#announce('start', call),
      ended: (call, started) => {
        this.#release(call)
        if (this.#closedWhileClaiming.delete(call)) this.#forget(call)
        if (started) this.#announce('end', call)
      }
    }
    options.bus.onReconnect(() => this.#renewClaims())
    options.bus.receivePlayback((interactionId, message) => this.#playback(interactionId, message))
    options.metrics.foldBeforeScrape(() => this.fold())
    const { pingIntervalMs, pongTimeoutMs, idleTimeoutMs, startTimeoutMs } = options.keepalive
    const sweepMs = Math.min(MAX_SWEEP_MS, Math.max(10, Math.min(pingIntervalMs, pongTimeoutMs, idleTimeoutMs, startTimeoutMs) / 4))
    this.#sweeper = setInterval(() => this.#sweep(), sweepMs)
    this.#sweeper.unref()
    this.#renewer = setInterval(() => this.#renewClaims(), options.claimTtlMs / 3)
    this.#renewer.unref()
  }

  /** False from the moment the drain or shutdown begins: readiness fails and new connections are refused. */
  get accepting (): boolean {
    return this.#accepting
  }

  /** Why a new connection would be refused now, or null when it is welcome. Open connections are never touched. */
  refusal (): Refusal | null {
    if (!this.#accepting) return 'shutting_down'
    if (this.#connections.size >= this.#options.maxCalls) return 'max_calls'
    return null
  }

  /** Takes an upgraded vendor connection: its call lives here until the socket closes. */
  open (socket: WebSocket, connection: { candidates: Candidate[], log: Log }): LiveCall {
    const { bus, metrics, playback, inbound } = this.#options
    const call = new LiveCall({ socket, ...connection, owner: this.#owner, bus, metrics, playback, inbound })
    this.#connections.add(call)
    // Listeners are attached synchronously, so no message can arrive before them; ws hands over Buffers.
    socket.on('message', (data, isBinary) => call.receive(data as Buffer, isBinary))
    socket.on('pong', () => call.pong())
    // ws has already started closing with the fitting code; the call logs itself and the reason.
    socket.on('error', (err: Error & { code?: string }) => call.reject(new ProtocolError(wsErrorCloseCode(err.code), err.message)))
    socket.on('close', (code) => {
      const claiming = call.claiming
      call.closed(code)
      // A start being claimed still becomes a call (call.start, then call.stop) once the claim is answered.
      if (claiming) this.#closedWhileClaiming.add(call)
      else this.#forget(call)
    })
    return call
  }

  #forget (call: LiveCall): void {
    this.#connections.delete(call)
    if (this.#connections.size === 0) for (const resolve of this.#emptied.splice(0)) resolve()
  }

  /** Connections held, started or not: what MAX_CONCURRENT_CALLS bounds. */
  get size (): number {
    return this.#connections.size
  }

  /** Every connection, started or not. */
  calls (): IterableIterator<LiveCall> {
    return this.#connections.values()
  }

  /** Every connection's call as it stands (tests and tools; the dashboard reads calls() and their info). */
  snapshot (): CallSnapshot[] {
    return [...this.#connections].map((call) => call.snapshot())
  }

  /**
   * The token this replica holds the call's claim with, from its reservation until its end (null otherwise): with
   * it, another process can give the claim up for a call this one can no longer end (Bus.releaseCall).
   */
  claimToken (call: LiveCall): string | null {
    return this.#claims.get(call)?.token ?? null
  }

  /** Refuses new connections and waits until the live ones end, or until the timeout. */
  async drain (timeoutMs: number): Promise<void> {
    this.#accepting = false
    const { log } = this.#options
    if (this.#connections.size === 0) return
    log.info({ connections: this.#connections.size, timeout_ms: timeoutMs }, 'draining live calls')
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      new Promise<void>((resolve) => this.#emptied.push(resolve)),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs) })
    ])
    clearTimeout(timer)
    if (this.#connections.size > 0) log.warn({ connections: this.#connections.size }, 'drain timeout: closing the calls still live')
  }

  /** Ends every call with reason shutdown and closes its connection with 1001. */
  shutdown (): void {
    this.#accepting = false
    for (const call of this.#connections) call.hangup('shutdown', CloseCode.GOING_AWAY, 'server shutting down')
  }

  /** Stops the keepalive and the claims' renewal; the connections are closed by shutdown(). */
  close (): void {
    clearInterval(this.#sweeper)
    clearInterval(this.#renewer)
  }

  /** Adds what every call has counted since the last fold to the metrics. */
  fold (): void {
    for (const call of this.#connections) call.fold()
  }

  /** A listener's failure is logged; it must not end the call, nor escape into a socket's or a timer's handler. */
  #announce (event: keyof LiveCallsEvents, call: LiveCall): void {
    try {
      this.emit(event, call)
    } catch (err) {
      this.#options.log.error({ err, event }, 'a live-calls listener failed')
    }
  }

  #sweep (): void {
    const now = Date.now()
    for (const call of this.#connections) call.keepalive(now, this.#options.keepalive)
  }

  #playback (tag: string, message: Buffer): void {
    const call = this.#byTag.get(tag)?.call
    // A message that raced the call's end and its unsubscribe.
    if (call === undefined) this.#options.metrics.playbackDropped.inc({ reason: 'call_ended' })
    else call.playback(message)
  }

  /** One stream per call on this replica, at once. */
  #reserve (call: LiveCall, ref: CallRef): boolean {
    const tag = callTag(ref)
    if (this.#byTag.has(tag)) return false
    // The token starts with the stream's start time: in Redis, the older of two streams of a call keeps it.
    const claim: Claim = { call, ref, token: `${Date.now()}:${this.#replica}:${++this.#claimed}` }
    this.#byTag.set(tag, claim)
    this.#claims.set(call, claim)
    return true
  }

  /** One stream per call across replicas, by the claim in Redis. */
  async #claim (call: LiveCall): Promise<ClaimResult> {
    const claim = this.#claims.get(call)
    if (claim === undefined) return 'duplicate'
    const held = await this.#options.bus.claimCall(claim.ref, claim.token, this.#options.claimTtlMs)
    if (held === null) return 'unconfirmed'
    return held ? 'owned' : 'duplicate'
  }

  #release (call: LiveCall): void {
    const claim = this.#claims.get(call)
    if (claim === undefined) return
    this.#claims.delete(call)
    this.#byTag.delete(callTag(claim.ref))
    this.#options.bus.releaseCall(claim.ref, claim.token)
  }

  /**
   * Renews every claim before it expires (and at once when Redis is back), and takes those that could not be
   * confirmed while Redis was away. A call whose claim an older stream holds now ends.
   */
  #renewClaims (): void {
    const { bus, claimTtlMs, log } = this.#options
    for (const { call, ref, token } of this.#claims.values()) {
      bus.claimCall(ref, token, claimTtlMs).then((held) => {
        if (held === false && this.#claims.get(call)?.token === token) call.claimLost()
      }).catch((err: unknown) => log.error({ err }, 'renewing a call\'s claim failed'))
    }
  }
}

/** The close code ws sends for each of its own errors (ws/lib/receiver.js). */
function wsErrorCloseCode (code: string | undefined): number {
  if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return CloseCode.MESSAGE_TOO_BIG
  if (code === 'WS_ERR_INVALID_UTF8') return CloseCode.INVALID_PAYLOAD
  return CloseCode.PROTOCOL_ERROR
}
