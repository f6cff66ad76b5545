import { performance } from 'node:perf_hooks'
import Denque from 'denque'
import { ReplyError, type Redis } from 'ioredis'
import { redactUrl, type Log } from '../logger.js'
import type { Metrics } from '../metrics.js'
import type { AudioFrameEncoder, AudioFrameHeader, FixedHeader } from './audio-frame.js'
import { PublishDropped, type Bus, type BusProblem, type CallRoutes, type PlaybackReceiver, type PublishOutcome } from './bus.js'
import type { CallEvent } from './call-events.js'
import { callTag, claimKey, playbackChannel, playbackTag, trackRefs, type CallRef } from './channels.js'
import { FrameArena, type Slab } from './frame-arena.js'
import { connectRedis, type RedisTarget } from './redis-clients.js'
import type { RedisClient, Transport } from './transports.js'

/**
 * Takes a free claim, renews the caller's own, or takes one a younger stream holds (a claim value starts with its
 * stream's start time, so after Redis lost its keys the call's first stream wins it back): 1 when the caller holds it
 * now, 0 when an older stream does. Holding it, in Streams mode (ARGV[3] > 0), it keeps the call's audio streams
 * (KEYS[2], and KEYS[3] for a second track, in the same slot) alive that much longer than the claim, so a stream
 * whose process died still expires.
 */
const CLAIM = `
local holder = redis.call('GET', KEYS[1])
if holder ~= ARGV[1] and holder ~= false and
   tonumber(string.match(holder, '^(%d+):')) <= tonumber(string.match(ARGV[1], '^(%d+):')) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if tonumber(ARGV[3]) > 0 then
  for i = 2, #KEYS do
    redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2]) + tonumber(ARGV[3]))
  end
end
return 1`

/** Deletes a claim only if the caller still holds it. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`

/** The claims' connection, with the claim scripts defined on it. */
type ClaimingRedis = RedisClient & {
  /** `numberOfKeys` counts the claim's key and the audio keys after it. */
  claimCall (numberOfKeys: number, key: string, ...audioKeysThenArgs: Array<string | number>): Promise<number>
  releaseCall (key: string, owner: string): Promise<number>
}

export interface RedisBusOptions {
  target: RedisTarget
  /** Pub/sub or Streams: how frames and events are written. */
  transport: Transport
  prefix: string
  log: Log
  metrics: Metrics
  /** What may wait for Redis, buffered or unacknowledged, before the oldest is dropped (REDIS_BUFFER_MAX_BYTES). */
  bufferMaxBytes: number
  /** A call's dtmf and mark events that may wait for Redis before its newer ones are dropped. */
  maxEventsPerCall: number
  /** A publish unacknowledged for this long means Redis is stalled. */
  stallTimeoutMs: number
  /** How long close() waits for QUIT, and at least for what waits, before it drops the connection. */
  quitTimeoutMs?: number
}

/**
 * What waits for Redis, in three lanes dropped in this order when the bound is passed: audio frames, then dtmf and
 * mark events, then call.start and call.stop. Each lane is in publish order, and a flush merges them by id.
 */
type Lane = 'audio' | 'note' | 'lifecycle'

interface Pending {
  /** Publish order, across lanes. */
  id: number
  lane: Lane
  channel: string
  /**
   * A frame, or the arena slab that holds a buffered one at `offset` (no Buffer object per waiting frame). Events stay
   * objects until sent, so a call.stop still waiting can learn of frames lost after it was queued.
   */
  payload: Buffer | CallEvent
  /** A Streams frame's header, which it writes as fields; null for events and pub/sub frames. */
  header: AudioFrameHeader | null
  /** Where a frame lies in `payload`, and its length. */
  offset: number
  length: number
  /** What it is charged against the bound: its size and its bookkeeping. */
  bytes: number
  /** performance.now() when an audio frame was handed over, for the publish latency; -1 for events. */
  since: number
  /** performance.now() when it was last written to Redis, for stall detection. */
  sentAt: number
  /** Which send a reply belongs to: a publish handed back to the buffer ignores the replies of its earlier send. */
  attempt: number
  /** Acknowledged or failed for good; it leaves the in-flight queue when it reaches the head. */
  settled: boolean
  /** Lost with its connection: it goes back in line. */
  lost: boolean

  call: CallRef
  outcome: PublishOutcome
  /** A frame written as its whole PUBLISH command (AudioFrameEncoder), sent as it is. */
  encoded: boolean
  /** The arena slab holding a buffered frame's copy, released once it is sent or dropped. */
  slab: Slab | null
}

/**
 * Bookkeeping charged per waiting publish on top of its bytes, so that REDIS_BUFFER_MAX_BYTES bounds the memory it
 * costs, not only the payloads: the Pending and its queue slot, and the headroom the garbage collector takes on top
 * (test/outage-memory.test.ts; docs/operations.md, "Redis outages").
 */
const ENTRY_OVERHEAD_BYTES = 896
/** What a Streams frame's header object costs while it waits (its eight fields and the object). */
const HEADER_OVERHEAD_BYTES = 256
/**
 * Pendings the bound dropped kept for reuse. A waiting publish outlives the young generation, so one dropped is
 * garbage in the old one: one per frame through a long outage, they piled up to about the buffer's own size again
 * before a full collection ran (test/outage-memory.test.ts). Once full, the buffer drops about one per publish, so a
 * few spares take it all.
 */
const MAX_SPARE_PENDINGS = 64
/**
 * The share of the bound that audio may not take in flight, kept for events: during a stall, frames already written
 * cannot be dropped, and a call.stop must still find room while the oldest waiting frames go.
 */
const EVENT_RESERVE_SHARE = 1 / 8
/** A flush writes at most this many publishes per turn of the event loop, so a backlog never starves it. */
const FLUSH_BATCH = 512
/** While Redis cannot be reached, the warning repeats at most this often. */
const UNREACHABLE_LOG_INTERVAL_MS = 10_000
/** Publishes lost with a cluster node's connection, while the cluster as a whole is up, are retried after this. */
const RETRY_DELAY_MS = 100
/** Lost publishes wait at most this for the rest in flight to be answered before they go back in line. */
const LOST_WAIT_MS = 1000
/**
 * Redis's answers that say "not here, not now" rather than "no": a slot that moved or has no master yet (a cluster
 * failing over), a replica not yet promoted, a server loading its data. What gets one is sent again.
 */
const TRANSIENT_REPLY = /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY|LOADING) /
/** How often a cluster's own view of its state (CLUSTER INFO) is read, for readiness. */
const CLUSTER_CHECK_INTERVAL_MS = 1000
/** Calls named one by one in the shutdown's drop report; the rest are summed up. */
const MAX_CALLS_REPORTED = 100

/**
 * The bus over Redis, one instance or a cluster, on three connections of its own: one that writes frames and events
 * (with the transport's commands: PUBLISH, SPUBLISH or XADD; batched per turn of the event loop, by corking for
 * pub/sub on one Redis and by ioredis's auto-pipelining otherwise), one that holds the calls' claims, and one
 * subscribed to the playback channels of the calls live here, so Redis delivers a call's playback only to the
 * replica that holds it. On a cluster, pub/sub is sharded (SPUBLISH, SSUBSCRIBE).
 *
 * ioredis's offline queue is unbounded, so it is off: while Redis is away or stalled, publishes wait here, in order,
 * and go out in that order once it takes them again. Everything waiting, sent or not, counts against
 * REDIS_BUFFER_MAX_BYTES; past it the oldest audio is dropped first, then the oldest dtmf and mark events, then
 * the oldest call.start and call.stop, each in O(1). A call's dtmf and mark events are also bounded per call.
 */
export class RedisBus implements Bus {
  readonly #redis: RedisClient
  readonly #subscriber: RedisClient
  readonly #claims: ClaimingRedis
  /** What the logs name as Redis: the URL (password redacted), or the cluster's seeds. */
  readonly #where: string
  readonly #transport: Transport
  /** On a Redis Cluster: sharded pub/sub, and the cluster's state in readiness. */
  readonly #sharded: boolean
  readonly #prefix: string
  readonly #log: Log
  readonly #subscriberLog: Log
  readonly #metrics: Metrics
  readonly #maxBytes: number
  /** What audio may have in flight: the bound less the events' reserve. */
  readonly #maxAudioInFlight: number
  readonly #maxEventsPerCall: number
  readonly #stallTimeoutMs: number
  readonly #quitTimeoutMs: number
  #receiver: PlaybackReceiver | null = null
  readonly #reconnected: Array<() => void> = []

  readonly #lanes: Record<Lane, Denque<Pending>> = { audio: new Denque(), note: new Denque(), lifecycle: new Denque() }
  readonly #allLanes = Object.values(this.#lanes)
  #waiting = 0
  #bufferedBytes = 0
  /** Handed to ioredis and not yet answered, oldest first; settled ones leave from the head. */
  readonly #inFlight = new Denque<Pending>()
  #inFlightBytes = 0
  #nextId = 0
  /** dtmf and mark events waiting per call tag, for REDIS_BUFFER_MAX_EVENTS_PER_CALL. */
  readonly #notesByCall = new Map<string, number>()
  #flushScheduled = false
  readonly #arena = new FrameArena()
  /** Pendings the bound dropped, for the next publishes (MAX_SPARE_PENDINGS). */
  readonly #spares: Pending[] = []
  readonly #audioChannels = new WeakMap<CallRef, string>()

  #wasConnected = false
  #everConnected = false
  /** An attempt to connect has failed: with #everConnected false, Redis has not been reached since the start. */
  #attemptFailed = false
  #lastUnreachableLog = 0
  #stalled = false
  readonly #stallWatch: NodeJS.Timeout
  /** The cluster's own word on its state, read every second; true until it says otherwise. */
  #clusterOk = true
  #clusterCheck: NodeJS.Timeout | null = null
  #requeueScheduled = false
  #retryTimer: NodeJS.Timeout | null = null
  /** In flight and not yet answered; and lost with their connection, waiting to go back in line. */
  #open = 0
  #lost = 0
  /** Set once publishes are lost: they go back in line when the rest in flight have been answered, or at this. */
  #lostTimer: NodeJS.Timeout | null = null
  /** Sharded pub/sub only: the newest frame Redis took per call, so a retried older one is dropped, not reordered. */
  readonly #lastTaken = new WeakMap<CallRef, number>()
  readonly #guardOrder: boolean
  #subscriberUp = false
  /** Whether the subscriber was ever connected: its first connection subscribes by itself, no warning. */
  #subscriberConnectedOnce = false
  /** Playback channels subscribed, resubscribed by the bus itself after a reconnect. */
  readonly #subscribed = new Set<string>()
  /** close() keeps trying to deliver what waits until this time (epoch ms), when later than its QUIT timeout. */
  #flushDeadline = 0
  #closing = false
  /** QUIT is next: nothing more is written. */
  #quitting = false
  /** The connection's writes are held until the end of this turn of the event loop (#batchWrites). */
  #corked = false
  /** Closed: a publish now fails at once. */
  #closed = false
  #idle: Array<() => void> = []

  constructor (options: RedisBusOptions) {
    const { target } = options
    this.#where = target.clusterNodes === null ? redactUrl(target.url) : `cluster ${target.clusterNodes.map(({ host, port }) => `${host}:${port}`).join(',')}`
    this.#transport = options.transport
    this.#sharded = target.clusterNodes !== null
    this.#guardOrder = this.#sharded && options.transport.name === 'pubsub'

    this.#prefix = options.prefix
    this.#log = options.log.child({ component: 'publisher' })
    this.#subscriberLog = options.log.child({ component: 'playback' })
    this.#metrics = options.metrics
    this.#maxBytes = options.bufferMaxBytes
    this.#maxAudioInFlight = options.bufferMaxBytes * (1 - EVENT_RESERVE_SHARE)
    this.#maxEventsPerCall = options.maxEventsPerCall
    this.#stallTimeoutMs = options.stallTimeoutMs
    this.#quitTimeoutMs = options.quitTimeoutMs ?? 2000

    this.#redis = connectRedis(target, {
      // Frames written as whole commands are batched by #batchWrites instead, and everything else with them, in order.
      enableAutoPipelining: !options.transport.encodesCommands,
      connectionName: 'rtaa-ingest:publisher',
      enableOfflineQueue: false,
      // In-flight publishes fail at once when the connection drops; they come back here, not into ioredis.
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0
    // On a cluster too: ioredis would retry each failed command on a timer of its own, and a frame retried so could
    // land behind a later one. MOVED and ASK it still follows at once.
    }, { retryDelayOnFailover: 0, retryDelayOnClusterDown: 0 })
    this.#redis.on('ready', () => {
      this.#wasConnected = true
      this.#everConnected = true
      this.#lastUnreachableLog = 0
      this.#log.info({ buffered: this.#waiting }, 'redis connected')
      this.#flush()
    })
    this.#redis.on('close', () => {
      if (this.#wasConnected && !this.#quitting) {
        this.#log.warn({ redis: this.#where }, 'redis connection lost, reconnecting')
        this.#metrics.redisDisconnects.inc({ connection: 'publisher' })
        this.#lastUnreachableLog = Date.now()
      }
      this.#wasConnected = false
    })
    // ioredis emits an error on every failed reconnect: the first is a warning at once, then one every 10 s.
    this.#redis.on('error', (err: Error & { code?: string }) => this.#unreachable(err))

    // One Redis: resubscribed by the bus itself after a reconnect (#subscriberReady). A cluster: ioredis keeps a
    // subscriber per master and moves each channel to its slot's new master after a failover.
    this.#subscriber = connectRedis(target,
      { connectionName: 'rtaa-ingest:playback', maxRetriesPerRequest: null, autoResubscribe: this.#sharded },
      { shardedSubscribers: true })
    this.#subscriber.on(this.#sharded ? 'smessageBuffer' : 'messageBuffer', (channel: Buffer, message: Buffer) => {
      this.#receiver?.(playbackTag(this.#prefix, channel.toString()), message)
    })
    this.#subscriber.on('ready', () => this.#subscriberReady())
    this.#subscriber.on('close', () => this.#subscriberLost())
    this.#subscriber.on('error', (err) => this.#subscriberLog.debug({ err }, 'playback subscriber connection error'))

    // Claims have a connection of their own, so they never wait behind a backlog of audio.
    this.#claims = connectRedis(target, { connectionName: 'rtaa-ingest:claims', enableOfflineQueue: false, maxRetriesPerRequest: 0 }) as ClaimingRedis
    this.#claims.defineCommand('claimCall', { lua: CLAIM })
    this.#claims.defineCommand('releaseCall', { numberOfKeys: 1, lua: RELEASE })
    let claimsUp = false
    this.#claims.on('ready', () => {
      claimsUp = true
      for (const listener of this.#reconnected) listener()
    })
    this.#claims.on('close', () => {
      if (claimsUp && !this.#closing) this.#metrics.redisDisconnects.inc({ connection: 'claims' })
      claimsUp = false
    })
    this.#claims.on('error', (err) => this.#log.debug({ err }, 'claims connection error'))

    this.#stallWatch = setInterval(() => this.#watchStall(), Math.min(500, this.#stallTimeoutMs / 2))
    this.#stallWatch.unref()
    if (this.#sharded) {
      this.#clusterCheck = setInterval(() => this.#checkCluster(), CLUSTER_CHECK_INTERVAL_MS)
      this.#clusterCheck.unref()
    }
    this.#metrics.foldBeforeScrape(() => {
      this.#metrics.redisBufferBytes.set(this.waitingBytes)
      this.#metrics.redisStalled.set(this.#stalled ? 1 : 0)
    })
  }

  get connected (): boolean {
    return this.#redis.status === 'ready'
  }

  get waitingBytes (): number {
    return this.#bufferedBytes + this.#inFlightBytes
  }

  get unreachableSinceStart (): boolean {
    return !this.#everConnected && this.#attemptFailed
  }

  get problems (): BusProblem[] {
    const problems: BusProblem[] = []
    if (!this.connected) problems.push('redis_disconnected')
    else if (this.#oldestUnacknowledgedMs(performance.now()) > this.#stallTimeoutMs) problems.push('redis_stalled')
    if (this.connected && !this.#clusterOk) problems.push('redis_cluster_down')
    if (this.#subscriber.status !== 'ready') problems.push('playback_disconnected')
    return problems
  }

  callRoutes (call: CallRef): CallRoutes {
    const streams = this.#transport.name === 'streams'
    const target = this.#audioChannelOf(call)
    return {
      transport: this.#transport.name,
      sharded: this.#sharded,
      audio_channel: streams ? null : target,
      audio_stream: streams ? target : null,
      playback_channel: playbackChannel(this.#prefix, call),
      audio_by_track: Object.fromEntries(trackRefs(call).map((ref, i) => [(call.tracks ?? ['inbound'])[i], ref === call ? target : this.#transport.audioTarget(ref)]))
    }
  }

  publishEvent (call: CallRef, event: CallEvent): Promise<void> {
    return new Promise((resolve, reject) => {
      const bytes = Buffer.byteLength(JSON.stringify(event))
      // A call's lifecycle, pauses included, is kept while anything can be: a worker must know audio stopped on purpose.
      if (event.type === 'call.start' || event.type === 'call.stop' || event.type === 'call.paused' || event.type === 'call.resumed') {
        this.#publish('lifecycle', this.#audioChannelOf(call), event, null, bytes, -1, call, { published: resolve, failed: reject })
        return
      }
      // dtmf and mark events count against their call's bound while they wait, sent or not.
      const tag = callTag(call)
      const waiting = this.#notesByCall.get(tag) ?? 0
      if (waiting >= this.#maxEventsPerCall) {
        this.#metrics.eventsDropped.inc({ type: event.type, reason: 'call_event_limit' })
        reject(new PublishDropped('call_event_limit'))
        return
      }
      this.#notesByCall.set(tag, waiting + 1)
      const done = (): void => {
        const left = (this.#notesByCall.get(tag) ?? 1) - 1
        if (left === 0) this.#notesByCall.delete(tag)
        else this.#notesByCall.set(tag, left)
      }
      this.#publish('note', this.#audioChannelOf(call), event, null, bytes, -1, call, {
        published: () => { done(); resolve() },
        failed: (err) => { done(); reject(err) }
      })
    })
  }

  publishAudio (call: CallRef, header: AudioFrameHeader, pcm: Buffer, outcome: PublishOutcome): void {
    const bytes = this.#transport.frameBytes(header, pcm)
    // Pub/sub's bytes hold the header already: a waiting frame keeps no header object alive besides.
    this.#publish('audio', this.#audioChannelOf(call), bytes, this.#transport.keepsHeader ? header : null, bytes.length, performance.now(), call, outcome)
  }

  frameEncoder (call: CallRef, fixed: FixedHeader): AudioFrameEncoder | null {
    return this.#transport.frameEncoder(this.#audioChannelOf(call), fixed)
  }

  publishFrame (call: CallRef, message: Buffer, outcome: PublishOutcome): void {
    this.#publish('audio', this.#audioChannelOf(call), message, null, message.length, performance.now(), call, outcome, this.#transport.encodesCommands)
  }

  /** A call's audio channel (or stream), named once per call rather than once per frame (and per waiting frame). */
  #audioChannelOf (call: CallRef): string {
    let channel = this.#audioChannels.get(call)
    if (channel === undefined) {
      channel = this.#transport.audioTarget(call)
      this.#audioChannels.set(call, channel)
    }
    return channel
  }

  async claimCall (call: CallRef, owner: string, ttlMs: number): Promise<boolean | null> {
    if (this.#claims.status !== 'ready') return null
    try {
      const audioKeys = trackRefs(call).map((ref) => this.#transport.audioTarget(ref))
      return await this.#claims.claimCall(1 + audioKeys.length, claimKey(this.#prefix, call), ...audioKeys, owner, ttlMs, this.#transport.liveStreamTtlMs) === 1
    } catch (err) {
      this.#log.debug({ err }, 'call claim not answered')
      return null
    }
  }

  releaseCall (call: CallRef, owner: string): void {
    if (this.#claims.status !== 'ready') return
    this.#claims.releaseCall(claimKey(this.#prefix, call), owner)
      .catch((err: Error) => this.#log.debug({ err }, 'call claim not released; it expires'))
  }

  onReconnect (listener: () => void): void {
    this.#reconnected.push(listener)
  }

  receivePlayback (receiver: PlaybackReceiver): void {
    this.#receiver = receiver
  }

  async subscribePlayback (call: CallRef): Promise<void> {
    const channel = playbackChannel(this.#prefix, call)
    this.#subscribed.add(channel)
    try {
      // On a cluster, the first channel of a shard also connects that shard's subscriber.
      await (this.#sharded ? this.#subscriber.ssubscribe(channel) : this.#subscriber.subscribe(channel))
    } catch (err) {
      this.#subscriberLog.warn({ err, channel }, 'playback subscribe failed')
    }
  }

  unsubscribePlayback (call: CallRef): void {
    const channel = playbackChannel(this.#prefix, call)
    this.#subscribed.delete(channel)
    const unsubscribed = this.#sharded ? this.#subscriber.sunsubscribe(channel) : this.#subscriber.unsubscribe(channel)
    unsubscribed.catch((err: Error) => this.#subscriberLog.debug({ err, channel }, 'playback unsubscribe failed'))
  }

  /** On close, keeps trying to deliver what waits until `deadline` (epoch ms): the shutdown's drain allows that long. */
  flushUntil (deadline: number): void {
    this.#flushDeadline = deadline
  }

  async close (): Promise<void> {
    this.#closing = true
    this.#receiver = null
    clearInterval(this.#stallWatch)
    if (this.#clusterCheck !== null) clearInterval(this.#clusterCheck)
    this.#subscriber.disconnect()
    this.#claims.disconnect()
    await this.#waitUntilIdle(Math.max(this.#flushDeadline - Date.now(), this.#quitTimeoutMs))
    this.#quitting = true
    // ioredis writes QUIT at once but auto-pipelined publishes a turn later: QUIT must follow them (and a corked
    // connection's writes go out at the end of this turn).
    await new Promise((resolve) => setImmediate(resolve))
    if (!this.#everConnected) {
      // Never reached (a start that failed to listen, a wrong REDIS_URL): there is nothing for QUIT to flush.
      this.#redis.disconnect()
    } else if (this.#redis.status !== 'end') {
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<'timeout'>((resolve) => { timer = setTimeout(resolve, this.#quitTimeoutMs, 'timeout') })
      // QUIT is queued behind every publish already sent, so it flushes them; a dead Redis must not hold shutdown.
      const outcome = await Promise.race([this.#redis.quit().catch(() => 'failed'), timeout])
      clearTimeout(timer)
      if (outcome !== 'OK') {
        this.#log.warn({ outcome }, 'redis did not acknowledge QUIT, dropping the connection')
        this.#redis.disconnect()
      }
    }
    this.#closed = true
    this.#dropAtShutdown()
  }

  /** Resolves once nothing waits for Redis, or after `timeoutMs`. */
  async #waitUntilIdle (timeoutMs: number): Promise<void> {
    if (this.#isIdle()) return
    this.#log.info({ messages: this.#waiting + this.#inFlight.length, bytes: this.#bufferedBytes + this.#inFlightBytes, timeout_ms: timeoutMs },
      'closing: waiting for redis to take what is buffered')
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      new Promise<void>((resolve) => this.#idle.push(resolve)),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs) })
    ])
    clearTimeout(timer)
  }

  #isIdle (): boolean {
    return this.#waiting === 0 && this.#inFlightBytes === 0
  }

  #publish (lane: Lane, channel: string, payload: Buffer | CallEvent, header: AudioFrameHeader | null, bytes: number, since: number, call: CallRef,
    outcome: PublishOutcome, encoded = false): void {
    const charged = bytes + ENTRY_OVERHEAD_BYTES + (header === null ? 0 : HEADER_OVERHEAD_BYTES)
    // One the bound dropped is reused (#enforceBound). Its attempts go on counting: a late reply to an earlier send is
    // never taken for one to the next.
    const spare = this.#spares.pop()
    const pending: Pending = spare === undefined
      ? { id: this.#nextId++, lane, channel, payload, header, offset: 0, length: bytes, bytes: charged, since, sentAt: 0, attempt: 0, settled: false, lost: false, call, outcome, encoded, slab: null }
      : Object.assign(spare, { id: this.#nextId++, lane, channel, payload, header, offset: 0, length: bytes, bytes: charged, since, sentAt: 0, settled: false, lost: false, call, outcome, encoded, slab: null })
    if (this.#closed) {
      this.#fail(pending, new PublishDropped('shutdown'))
      return
    }
    if (this.#canSend(pending)) {
      this.#send(pending)
      return
    }
    // A frame from Buffer's shared pool would keep its whole slab alive, garbage included, for as long as it waits.
    if (lane === 'audio') this.#arena.hold(pending)
    this.#lanes[lane].push(pending)
    this.#waiting++
    this.#bufferedBytes += pending.bytes
    this.#enforceBound()
  }

  /** Straight to Redis only when nothing older waits, so order holds, and while what is in flight leaves room. */
  #canSend (pending: Pending): boolean {
    return this.#waiting === 0 && this.#lost === 0 && this.#redis.status === 'ready' && !this.#quitting && this.#fitsInFlight(pending)
  }

  #fitsInFlight (pending: Pending): boolean {
    return this.#inFlightBytes + pending.bytes <= (pending.lane === 'audio' ? this.#maxAudioInFlight : this.#maxBytes)
  }

  #send (pending: Pending): void {
    const attempt = ++pending.attempt
    pending.settled = false
    pending.sentAt = performance.now()
    this.#inFlight.push(pending)
    this.#inFlightBytes += pending.bytes
    this.#open++
    const { payload, header } = pending
    this.#batchWrites()
    const bytes = Buffer.isBuffer(payload) && pending.slab !== null ? payload.subarray(pending.offset, pending.offset + pending.length) : payload
    const written = !Buffer.isBuffer(bytes)
      ? this.#transport.writeEvent(this.#redis, bytes as CallEvent, pending.call)
      : pending.encoded
        ? this.#transport.writeEncoded(this.#redis, pending.channel, bytes)
        : this.#transport.writeFrame(this.#redis, pending.channel, header, bytes)
    written.then(() => this.#acknowledged(pending, attempt), (err: Error) => this.#failed(pending, attempt, err))
  }

  /**
   * Where frames go out as whole commands, ioredis writes each at once, so what is written in one turn of the event
   * loop is held (corked) and goes in one write at its end: the batching its auto-pipelining does elsewhere, without
   * a pipeline and a promise per command. Commands keep the order they were sent in.
   */
  #batchWrites (): void {
    if (this.#corked || !this.#transport.encodesCommands) return
    const stream = (this.#redis as Redis).stream
    stream.cork()
    this.#corked = true
    setImmediate(() => {
      this.#corked = false
      stream.uncork()
    })
  }

  #acknowledged (pending: Pending, attempt: number): void {
    if (pending.attempt !== attempt || pending.settled) return
    this.#settle(pending)
    if (this.#guardOrder && pending.lane === 'audio' && pending.id > (this.#lastTaken.get(pending.call) ?? -1)) this.#lastTaken.set(pending.call, pending.id)
    if (pending.slab !== null) this.#arena.release(pending.slab)
    if (pending.since >= 0) this.#metrics.publishLatency.observe((performance.now() - pending.since) / 1000)
    pending.outcome.published()
    this.#moveOn()
  }

  #failed (pending: Pending, attempt: number, err: Error): void {
    if (pending.attempt !== attempt || pending.settled) return
    // Redis's own answer is final, but for those of a failover under way, and so is a drop. Any other failure lost the
    // publish with its connection: it goes back in line, ahead of what waits, with whatever else that connection lost.
    if (err instanceof ReplyError ? TRANSIENT_REPLY.test(err.message) : !(err instanceof PublishDropped)) {
      pending.lost = true
      this.#open--
      if (this.#lost++ === 0) this.#lostTimer = setTimeout(() => this.#scheduleRequeue(), LOST_WAIT_MS).unref()
      if (this.#open === 0) this.#scheduleRequeue()
      return
    }

    this.#settle(pending)
    this.#fail(pending, err)
    this.#moveOn()
  }

  /** After a publish settles: send what waits, or tell close() that nothing does. */
  #moveOn (): void {
    if (this.#waiting > 0) this.#flush()
    else if (this.#inFlightBytes === 0) for (const resolve of this.#idle.splice(0)) resolve()
  }

  #settle (pending: Pending): void {
    pending.settled = true
    this.#inFlightBytes -= pending.bytes
    this.#open--
    while (this.#inFlight.peekFront()?.settled === true) this.#inFlight.shift()
    if (this.#lost > 0 && this.#open === 0) this.#scheduleRequeue()
  }

  /** Everything still in flight goes back in line (at shutdown, to be reported). */
  #requeueInFlight (): void {
    const returned: Pending[] = []
    for (let pending = this.#inFlight.shift(); pending !== undefined; pending = this.#inFlight.shift()) {
      if (!pending.settled) returned.push(pending)
    }
    this.#open = 0
    this.#lost = 0
    this.#return(returned)
  }

  /**
   * A connection drops all it holds at once: one requeue, a turn later, takes every publish it lost. Until then
   * nothing more is sent, and it waits for the rest in flight (on a cluster's other nodes) to be answered, so that
   * nothing sent after a lost publish lands before it is sent again; a node that answers nothing holds it up no more
   * than LOST_WAIT_MS.
   */
  #scheduleRequeue (): void {
    if (this.#requeueScheduled) return
    this.#requeueScheduled = true
    setImmediate(() => {
      this.#requeueScheduled = false
      this.#requeueLost()
    })
  }

  /**
   * What a connection lost goes back in line; what other connections (a cluster's other nodes) still carry stays in
   * flight. With one Redis, its reconnection flushes; a cluster still up retries in a moment, while it fails over.
   */
  #requeueLost (): void {
    const kept: Pending[] = []
    const lost: Pending[] = []
    for (let pending = this.#inFlight.shift(); pending !== undefined; pending = this.#inFlight.shift()) {
      if (!pending.settled) (pending.lost ? lost : kept).push(pending)
    }
    for (const pending of kept) this.#inFlight.push(pending)
    if (this.#lostTimer !== null) clearTimeout(this.#lostTimer)
    this.#lostTimer = null
    this.#lost = 0
    this.#return(lost)
    // The bound may have dropped all that came back: then close() may be waiting for this.
    if (this.#waiting === 0) this.#moveOn()
    else if (this.connected && this.#retryTimer === null) {
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = null
        this.#flush()
      }, RETRY_DELAY_MS).unref()
    }
  }

  /**
   * Publishes taken back from flight are older than everything waiting: they go to the lanes' fronts, newest first.
   * On sharded pub/sub, a frame whose call has had a later frame taken meanwhile is dropped and counted, not sent
   * out of order (Streams has Redis refuse it instead).
   */
  #return (returned: Pending[]): void {
    for (let i = returned.length - 1; i >= 0; i--) {
      const pending = returned[i]
      this.#inFlightBytes -= pending.bytes
      pending.attempt++
      pending.lost = false
      if (this.#guardOrder && pending.lane === 'audio' && (this.#lastTaken.get(pending.call) ?? -1) > pending.id) {
        this.#fail(pending, new PublishDropped('out_of_order'))
        continue
      }
      this.#lanes[pending.lane].unshift(pending)
      this.#waiting++
      this.#bufferedBytes += pending.bytes
    }
    this.#enforceBound()
  }

  /** A cluster says cluster_state:fail while a slot has no master (a failover under way): not ready meanwhile. */
  #checkCluster (): void {
    this.#claims.cluster('INFO').then((info: string) => {
      const ok = info.includes('cluster_state:ok')
      if (ok === this.#clusterOk) return
      this.#clusterOk = ok
      if (ok) this.#log.info('redis cluster state ok')
      else this.#log.warn('redis cluster state fail: a slot has no reachable master; not ready')
    }, (err: Error) => this.#log.debug({ err }, 'cluster state not read'))
  }

  /** Drops the oldest audio, then the oldest dtmf and mark events, then the oldest call events, until all fits. */
  #enforceBound (): void {
    while (this.#bufferedBytes + this.#inFlightBytes > this.#maxBytes) {
      const pending = this.#lanes.audio.shift() ?? this.#lanes.note.shift() ?? this.#lanes.lifecycle.shift()
      if (pending === undefined) return
      this.#waiting--
      this.#bufferedBytes -= pending.bytes
      this.#fail(pending, new PublishDropped('redis_buffer_full'))
      if (this.#spares.length < MAX_SPARE_PENDINGS) this.#spares.push(pending)
    }
  }

  /** Tells a publish's owner it will never arrive; an event's loss is counted here, a frame's by its call. */
  #fail (pending: Pending, err: Error): void {
    if (pending.slab !== null) this.#arena.release(pending.slab)
    if (!Buffer.isBuffer(pending.payload)) {
      this.#metrics.eventsDropped.inc({ type: pending.payload.type, reason: err instanceof PublishDropped ? err.reason : 'redis_error' })
    }
    pending.outcome.failed(err)
  }

  /** The oldest waiting publish, across lanes. */
  #next (): Pending | undefined {
    let next: Pending | undefined
    for (const lane of this.#allLanes) {
      const head = lane.peekFront()
      if (head !== undefined && (next === undefined || head.id < next.id)) next = head
    }
    return next
  }

  /** Sends what waits, in order, a batch per turn of the event loop while Redis takes it. */
  #flush (): void {
    let sent = 0
    while (this.#waiting > 0 && this.#lost === 0 && this.#redis.status === 'ready' && !this.#quitting) {
      const pending = this.#next() as Pending
      if (!this.#fitsInFlight(pending)) return
      if (sent++ === FLUSH_BATCH) {
        this.#scheduleFlush()
        return
      }
      this.#lanes[pending.lane].shift()
      this.#waiting--
      this.#bufferedBytes -= pending.bytes
      this.#send(pending)
    }
  }

  #scheduleFlush (): void {
    if (this.#flushScheduled) return
    this.#flushScheduled = true
    setImmediate(() => {
      this.#flushScheduled = false
      this.#flush()
    })
  }

  #oldestUnacknowledgedMs (now: number): number {
    const oldest = this.#inFlight.peekFront()
    return oldest === undefined ? 0 : now - oldest.sentAt
  }

  /** A stall is a connected Redis that stops answering (paused, swapping, a slow command): visible, and logged. */
  #watchStall (): void {
    // A dropped connection ends a stall too, but that is told as a lost connection, not as Redis answering.
    if (!this.connected) return
    const waitedMs = this.#oldestUnacknowledgedMs(performance.now())
    const stalled = waitedMs > this.#stallTimeoutMs
    if (stalled === this.#stalled) return
    this.#stalled = stalled
    this.#metrics.redisStalled.set(stalled ? 1 : 0)
    const state = { waited_ms: Math.round(waitedMs), in_flight_bytes: this.#inFlightBytes, buffered_bytes: this.#bufferedBytes }
    if (stalled) this.#log.warn(state, 'redis stalled: a publish has waited past REDIS_STALL_TIMEOUT_MS; not ready')
    else this.#log.info(state, 'redis answering again')
  }

  #unreachable (err: Error & { code?: string }): void {
    // A connection that was up and breaks is told by the close handler; this is for attempts that fail.
    if (this.#wasConnected) {
      this.#log.debug({ err }, 'redis connection error')
      return
    }
    this.#attemptFailed = true
    const now = Date.now()
    if (now - this.#lastUnreachableLog < UNREACHABLE_LOG_INTERVAL_MS) {
      this.#log.debug({ err }, 'redis connection error')
      return
    }
    this.#lastUnreachableLog = now
    // A cluster's own error is "Failed to refresh slots cache."; the last node's says why (not a cluster, refused…).
    const cause = (err as Error & { lastNodeError?: Error }).lastNodeError?.message
    const fields = { redis: this.#where, code: err.code, error: cause === undefined ? err.message : `${err.message} ${cause}`, buffered_bytes: this.#bufferedBytes + this.#inFlightBytes }
    if (this.#everConnected) this.#log.warn(fields, 'redis still unreachable; buffering')
    else this.#log.warn(fields, `redis unreachable: check ${this.#sharded ? 'REDIS_CLUSTER_NODES' : 'REDIS_URL'}; nothing is published until it connects`)
  }

  #subscriberReady (): void {
    this.#metrics.redisPlaybackConnected.set(1)
    if (this.#subscriberUp) return
    this.#subscriberUp = true
    const reconnected = this.#subscriberConnectedOnce
    this.#subscriberConnectedOnce = true
    if (!reconnected) {
      this.#subscriberLog.info('playback subscriber connected')
      return
    }
    if (this.#subscribed.size === 0 || this.#sharded) {
      this.#subscriberLog.info('playback subscriber reconnected')
      return
    }
    this.#subscriberLog.warn({ calls: this.#subscribed.size }, 'playback subscriber reconnected; resubscribing every live call')
    this.#subscriber.subscribe(...this.#subscribed).catch((err: Error) => this.#subscriberLog.warn({ err }, 'playback resubscribe failed'))
  }

  #subscriberLost (): void {
    this.#metrics.redisPlaybackConnected.set(0)
    if (!this.#subscriberUp) return
    this.#subscriberUp = false
    if (this.#closing) return
    this.#metrics.redisDisconnects.inc({ connection: 'playback' })
    this.#subscriberLog.warn({ calls: this.#subscribed.size, redis: this.#where },
      'playback subscriber lost its redis connection (see client-output-buffer-limit pubsub); playback published meanwhile is lost')
  }

  /** What never reached Redis by the end of the shutdown is dropped, and reported call by call. */
  #dropAtShutdown (): void {
    // Retries went on while close() waited; nothing is sent any more.
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer)
    if (this.#lostTimer !== null) clearTimeout(this.#lostTimer)
    this.#retryTimer = null
    this.#lostTimer = null
    this.#requeueInFlight()
    if (this.#waiting === 0) return
    const byCall = new Map<string, { call: CallRef, frames: number, events: string[] }>()
    for (let pending = this.#next(); pending !== undefined; pending = this.#next()) {
      this.#lanes[pending.lane].shift()
      const tag = callTag(pending.call)
      const entry = byCall.get(tag) ?? { call: pending.call, frames: 0, events: [] }
      byCall.set(tag, entry)
      if (Buffer.isBuffer(pending.payload)) entry.frames++
      else entry.events.push(pending.payload.type)
      this.#fail(pending, new PublishDropped('shutdown'))
    }
    this.#log.warn({ messages: this.#waiting, bytes: this.#bufferedBytes, calls: byCall.size }, 'closing with publishes redis never took: dropped')
    this.#waiting = 0
    this.#bufferedBytes = 0
    let reported = 0
    for (const { call, frames, events } of byCall.values()) {
      if (reported++ === MAX_CALLS_REPORTED) break
      this.#log.warn({ interaction_id: call.interactionId, tenant_id: call.tenantId, frames_dropped: frames, events_dropped: events },
        'dropped at shutdown: never reached redis')
    }
  }
}
