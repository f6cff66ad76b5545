import { performance } from 'node:perf_hooks'
import { Redis } from 'ioredis'
import type { Log } from '../logger.js'
import type { Metrics } from '../metrics.js'
import { encodeAudioFrame, type AudioFrameHeader } from './audio-frame.js'
import { PublishDropped, type Bus, type BusProblem, type PlaybackReceiver, type PublishOutcome } from './bus.js'
import type { CallEvent } from './call-events.js'
import { audioChannel, callsChannel, claimKey, playbackChannel, playbackTag, type CallRef } from './channels.js'

/**
 * Takes a free claim, renews the caller's own, or takes one a younger stream holds (a claim value starts with its
 * stream's start time, so after Redis lost its keys the call's first stream wins it back): 1 when the caller holds it
 * now, 0 when an older stream does.
 */
const CLAIM = `
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder ~= false and tonumber(string.match(holder, '^(%d+):')) <= tonumber(string.match(ARGV[1], '^(%d+):')) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`

/** Deletes a claim only if the caller still holds it. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`

/** The claims' connection, with the claim scripts defined on it. */
type ClaimingRedis = Redis & {
  claimCall (key: string, owner: string, ttlMs: number): Promise<number>
  releaseCall (key: string, owner: string): Promise<number>
}

export interface PubSubBusOptions {
  url: string
  prefix: string
  log: Log
  metrics: Metrics
  /** What may wait for Redis, buffered or unacknowledged, before the oldest frames are dropped. */
  bufferMaxBytes: number
  /** How long close() waits for QUIT before it drops the connection. */
  quitTimeoutMs?: number
}

interface Pending {
  /** Publish order: a publish that fails in flight goes back into the buffer at its place. */
  id: number
  channel: string
  /** Events stay objects until sent, so a call.stop still waiting can learn of frames lost after it was queued. */
  payload: Buffer | CallEvent
  bytes: number
  /** performance.now() when an audio frame was handed over, for the publish latency; -1 for events. */
  since: number
  outcome: PublishOutcome
}

/**
 * The bus over Redis pub/sub, on three connections of its own: one that publishes (PUBLISH, auto-pipelined), one
 * that holds the calls' claims, and one subscribed to the playback channels of the calls live here, so Redis
 * delivers a call's playback only to the
 * replica that holds it.
 *
 * ioredis's offline queue is unbounded, so it is off: while Redis is away, or too slow to answer, publishes wait in
 * a buffer of REDIS_BUFFER_MAX_BYTES, in order, and go out in that order on reconnect. Past the bound the oldest
 * frames are dropped (their outcome fails with PublishDropped), never events. The subscriber resubscribes by itself
 * after a reconnect.
 */
export class PubSubBus implements Bus {
  readonly #redis: Redis
  readonly #subscriber: Redis
  readonly #claims: ClaimingRedis
  readonly #prefix: string
  readonly #callsChannel: string
  readonly #log: Log
  readonly #subscriberLog: Log
  readonly #metrics: Metrics
  readonly #maxBytes: number
  readonly #quitTimeoutMs: number
  #receiver: PlaybackReceiver | null = null
  readonly #reconnected: Array<() => void> = []
  #buffer: Pending[] = []
  #bufferedBytes = 0
  #inFlightBytes = 0
  #nextId = 0
  #wasConnected = false

  constructor (options: PubSubBusOptions) {
    this.#prefix = options.prefix
    this.#callsChannel = callsChannel(options.prefix)
    this.#log = options.log.child({ component: 'publisher' })
    this.#subscriberLog = options.log.child({ component: 'playback' })
    this.#metrics = options.metrics
    this.#maxBytes = options.bufferMaxBytes
    this.#quitTimeoutMs = options.quitTimeoutMs ?? 2000
    this.#redis = new Redis(options.url, {
      enableAutoPipelining: true,
      connectionName: 'rtaa-ingest:publisher',
      enableOfflineQueue: false,
      // In-flight publishes fail at once when the connection drops; they come back here, not into ioredis.
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0
    })
    this.#redis.on('ready', () => {
      this.#wasConnected = true
      this.#log.info({ buffered: this.#buffer.length }, 'redis connected')
      this.#flush()
    })
    this.#redis.on('close', () => {
      if (this.#wasConnected) this.#log.warn('redis connection lost, reconnecting')
      this.#wasConnected = false
    })
    // ioredis emits an error on every failed reconnect; the state changes above carry the story at warn.
    this.#redis.on('error', (err) => this.#log.debug({ err }, 'redis connection error'))

    this.#subscriber = new Redis(options.url, { connectionName: 'rtaa-ingest:playback', maxRetriesPerRequest: null })
    this.#subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      this.#receiver?.(playbackTag(this.#prefix, channel.toString()), message)
    })
    this.#subscriber.on('error', (err) => this.#subscriberLog.debug({ err }, 'playback subscriber connection error'))

    // Claims have a connection of their own, so they never wait behind a backlog of audio.
    this.#claims = new Redis(options.url, { connectionName: 'rtaa-ingest:claims', enableOfflineQueue: false, maxRetriesPerRequest: 0 }) as ClaimingRedis
    this.#claims.defineCommand('claimCall', { numberOfKeys: 1, lua: CLAIM })
    this.#claims.defineCommand('releaseCall', { numberOfKeys: 1, lua: RELEASE })
    this.#claims.on('ready', () => { for (const listener of this.#reconnected) listener() })
    this.#claims.on('error', (err) => this.#log.debug({ err }, 'claims connection error'))
  }

  get connected (): boolean {
    return this.#redis.status === 'ready'
  }

  get problems (): BusProblem[] {
    const problems: BusProblem[] = []
    if (!this.connected) problems.push('redis_disconnected')
    if (this.#subscriber.status !== 'ready') problems.push('playback_disconnected')
    return problems
  }

  audioChannel (call: CallRef): string {
    return audioChannel(this.#prefix, call)
  }

  playbackChannel (call: CallRef): string {
    return playbackChannel(this.#prefix, call)
  }

  publishEvent (event: CallEvent): Promise<void> {
    return new Promise((resolve, reject) => this.#publish(this.#callsChannel, event, 512, -1, { published: resolve, failed: reject }))
  }

  publishAudio (call: CallRef, header: AudioFrameHeader, pcm: Buffer, outcome: PublishOutcome): void {
    const message = encodeAudioFrame(header, pcm)
    this.#publish(audioChannel(this.#prefix, call), message, message.length, performance.now(), outcome)
  }

  async claimCall (call: CallRef, owner: string, ttlMs: number): Promise<boolean | null> {
    if (this.#claims.status !== 'ready') return null
    try {
      return await this.#claims.claimCall(claimKey(this.#prefix, call), owner, ttlMs) === 1
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

  subscribePlayback (call: CallRef): void {
    const channel = this.playbackChannel(call)
    this.#subscriber.subscribe(channel).catch((err: Error) => this.#subscriberLog.warn({ err, channel }, 'playback subscribe failed'))
  }

  unsubscribePlayback (call: CallRef): void {
    const channel = this.playbackChannel(call)
    this.#subscriber.unsubscribe(channel).catch((err: Error) => this.#subscriberLog.debug({ err, channel }, 'playback unsubscribe failed'))
  }

  async close (): Promise<void> {
    this.#receiver = null
    this.#subscriber.disconnect()
    this.#claims.disconnect()
    if (this.#redis.status === 'end') return
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<'timeout'>((resolve) => { timer = setTimeout(resolve, this.#quitTimeoutMs, 'timeout') })
    // QUIT is queued behind every publish already sent, so it flushes them; a dead Redis must not hold shutdown.
    const outcome = await Promise.race([this.#redis.quit().catch(() => 'failed'), timeout])
    clearTimeout(timer)
    if (outcome !== 'OK') {
      this.#log.warn({ outcome }, 'redis did not acknowledge QUIT, dropping the connection')
      this.#redis.disconnect()
    }
    if (this.#buffer.length > 0) {
      this.#log.warn({ messages: this.#buffer.length, bytes: this.#bufferedBytes }, 'closing with publishes still waiting for redis')
      this.#dropAll()
    }
  }

  #publish (channel: string, payload: Buffer | CallEvent, bytes: number, since: number, outcome: PublishOutcome): void {
    const pending: Pending = { id: this.#nextId++, channel, payload, bytes, since, outcome }
    if (this.#canSend()) this.#send(pending)
    else this.#hold(pending)
  }

  /** Straight to Redis only when nothing older waits, so order holds. */
  #canSend (): boolean {
    return this.#buffer.length === 0 && this.#redis.status === 'ready' && this.#inFlightBytes < this.#maxBytes
  }

  #send (pending: Pending): void {
    this.#inFlightBytes += pending.bytes
    const message = Buffer.isBuffer(pending.payload) ? pending.payload : JSON.stringify(pending.payload)
    this.#redis.publish(pending.channel, message).then(() => this.#acknowledged(pending), (err: Error) => this.#failed(pending, err))
  }

  #acknowledged (pending: Pending): void {
    this.#inFlightBytes -= pending.bytes
    if (pending.since >= 0) this.#metrics.publishLatency.observe((performance.now() - pending.since) / 1000)
    pending.outcome.published()
    if (this.#buffer.length > 0) this.#flush()
  }

  #failed (pending: Pending, err: Error): void {
    this.#inFlightBytes -= pending.bytes
    // Lost with the connection: back in line, at its place. A reply error from a live Redis is final.
    if (this.#redis.status !== 'ready') this.#hold(pending)
    else pending.outcome.failed(err)
  }

  #hold (pending: Pending): void {
    const buffer = this.#buffer
    let at = buffer.length
    while (at > 0 && buffer[at - 1].id > pending.id) at--
    buffer.splice(at, 0, pending)
    this.#bufferedBytes += pending.bytes
    this.#enforceBound()
    this.#metrics.redisBufferBytes.set(this.#bufferedBytes)
  }

  /** Drops the oldest audio until what waits fits the bound again; events are small and always kept. */
  #enforceBound (): void {
    let index = 0
    while (this.#bufferedBytes + this.#inFlightBytes > this.#maxBytes && index < this.#buffer.length) {
      const pending = this.#buffer[index]
      if (!Buffer.isBuffer(pending.payload)) {
        index++
        continue
      }
      this.#buffer.splice(index, 1)
      this.#bufferedBytes -= pending.bytes
      pending.outcome.failed(new PublishDropped('redis_buffer_full'))
    }
  }

  #flush (): void {
    while (this.#buffer.length > 0 && this.#redis.status === 'ready' && this.#inFlightBytes < this.#maxBytes) {
      const pending = this.#buffer.shift() as Pending
      this.#bufferedBytes -= pending.bytes
      this.#send(pending)
    }
    this.#metrics.redisBufferBytes.set(this.#bufferedBytes)
  }

  #dropAll (): void {
    for (const pending of this.#buffer.splice(0)) pending.outcome.failed(new PublishDropped('shutdown'))
    this.#bufferedBytes = 0
    this.#metrics.redisBufferBytes.set(0)
  }
}
