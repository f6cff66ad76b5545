import type { CallEvent } from '../calls/call-events.js'
import type { AudioFrameHeader } from '../redis/audio-frame.js'

/**
 * How a publisher tells a call what became of each of its frames: an object the call makes once, not a promise
 * per frame, since the frame path runs fifty times a second per call.
 */
export interface PublishOutcome {
  /** Redis (or whatever the publisher writes to) acknowledged one frame. */
  published (): void
  /** One frame will never arrive: dropped by policy (PublishDropped) or refused. */
  failed (err: Error): void
}

/**
 * Where calls go. The Redis pub/sub publisher is the one implementation today; a Streams or Cluster (SPUBLISH)
 * publisher implements the same five members. Within a call, publish order must be call order.
 */
export interface Publisher {
  /** The channel name a consumer subscribes to for one call's audio, announced in call.start. */
  audioChannel (interactionId: string): string
  publishEvent (event: CallEvent): Promise<void>
  /** Publishes one frame and reports its fate to `outcome`; the publisher also observes its publish latency. */
  publishAudio (header: AudioFrameHeader, pcm: Buffer, outcome: PublishOutcome): void
  /** True while frames published now would reach Redis without waiting. */
  readonly connected: boolean
  close (): Promise<void>
}

/** A publish the publisher gave up on by policy (its outage buffer overflowed, or it shut down with Redis away). */
export class PublishDropped extends Error {
  override name = 'PublishDropped'
  readonly reason: string

  constructor (reason: string) {
    super(`publish dropped: ${reason}`)
    this.reason = reason
  }
}
