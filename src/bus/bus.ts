import type { AudioFrameEncoder, AudioFrameHeader, FixedHeader } from './audio-frame.js'
import type { CallEvent, CallStartEvent } from './call-events.js'
import type { CallRef } from './channels.js'

/** The fields of call.start that tell workers how to reach the call: its audio, and where to speak into it. */
export type CallRoutes = Pick<CallStartEvent, 'transport' | 'sharded' | 'audio_channel' | 'audio_stream' | 'playback_channel' | 'audio_by_track'>

/**
 * Where calls meet Redis: what the gateway publishes for workers, and the playback they send back. One
 * implementation (redis-bus.ts) serves pub/sub and Streams, on one Redis or a Redis Cluster; the calls do not
 * know which.
 */
export interface Bus {
  /** Where one call's audio goes, and where workers speak into it, for its call.start. */
  callRoutes (call: CallRef): CallRoutes
  /** Publishes one event of `call`, the same call the event names (with its epoch, for Streams' end entry). */
  publishEvent (call: CallRef, event: CallEvent): Promise<void>
  /**
   * Publishes one frame of a call (of one track of a call with two: `call` is that track's ref, one object per track)
   * and reports its fate to `outcome`; within a call, publish order is call order.
   */
  publishAudio (call: CallRef, header: AudioFrameHeader, pcm: Buffer, outcome: PublishOutcome): void
  /**
   * An encoder of one track's whole audio messages, header included, made once when its call starts; null when the
   * transport keeps a frame's header beside its PCM (Streams), and frames go through publishAudio.
   */
  frameEncoder (call: CallRef, fixed: FixedHeader): AudioFrameEncoder | null
  /** Publishes one frame that `frameEncoder`'s encoder wrote, as publishAudio does. */
  publishFrame (call: CallRef, message: Buffer, outcome: PublishOutcome): void
  /**
   * Starts delivering one call's playback messages to the receiver; until then nothing is subscribed. Resolves once
   * Redis has acknowledged the subscription (or it failed, which is logged): it never rejects.
   */
  subscribePlayback (call: CallRef): Promise<void>
  unsubscribePlayback (call: CallRef): void
  /** The one receiver of every call's playback messages, which finds the call by its tag (`callTag`). */
  receivePlayback (receiver: PlaybackReceiver): void
  /**
   * Claims a call for `owner` for `ttlMs`, or renews the claim `owner` holds. `owner` starts with the stream's start
   * time and a colon: a claim held by a younger stream is taken from it. True when `owner` holds it now, false when an
   * older stream does, null when Redis cannot say (unreachable, or an error).
   */
  claimCall (call: CallRef, owner: string, ttlMs: number): Promise<boolean | null>
  /** Gives a claim up, if `owner` still holds it; one that cannot be given up expires. */
  releaseCall (call: CallRef, owner: string): void
  /** Called each time the claims can reach Redis again, so they are renewed at once. */
  onReconnect (listener: () => void): void
  /** True while what is published now reaches Redis without waiting. */
  readonly connected: boolean
  /** Bytes waiting for Redis: buffered, and sent but not yet acknowledged (rtaa_redis_buffer_bytes). */
  readonly waitingBytes: number
  /** True while Redis has never been reached since the start, and an attempt has failed: new calls are refused. */
  readonly unreachableSinceStart: boolean
  /** What keeps the bus from serving a new call well now, for readiness; empty when nothing does. */
  readonly problems: BusProblem[]
  /** Lets close() keep trying to deliver what waits until `deadline` (epoch ms), as the shutdown's drain allows. */
  flushUntil (deadline: number): void
  /** Flushes what it can, then closes every connection; what never reached Redis is dropped and reported by call. */
  close (): Promise<void>
}

/**
 * `redis_disconnected`: the publisher cannot reach Redis. `redis_stalled`: Redis has left a publish unacknowledged for
 * longer than REDIS_STALL_TIMEOUT_MS. `playback_disconnected`: the playback subscriber cannot reach Redis.
 * `redis_cluster_down`: the Redis Cluster says its state is fail (a slot without a master, as during a failover).
 */
export type BusProblem = 'redis_disconnected' | 'redis_stalled' | 'playback_disconnected' | 'redis_cluster_down'

export type PlaybackReceiver = (tag: string, message: Buffer) => void

/**
 * How the bus tells a call what became of each of its frames: an object the call makes once, not a promise per
 * frame, since the frame path runs fifty times a second per call.
 */
export interface PublishOutcome {
  /** Redis acknowledged one frame. */
  published (): void
  /** One frame will never arrive: dropped by policy (PublishDropped) or refused. */
  failed (err: Error): void
}

/** A publish the bus gave up on by policy (its outage buffer overflowed, or it shut down with Redis away). */
export class PublishDropped extends Error {
  override name = 'PublishDropped'
  readonly reason: string

  constructor (reason: string) {
    super(`publish dropped: ${reason}`)
    this.reason = reason
  }
}
