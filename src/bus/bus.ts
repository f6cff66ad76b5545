import type { AudioFrameHeader } from './audio-frame.js'
import type { CallEvent } from './call-events.js'

/**
 * Where calls meet Redis: what the gateway publishes for workers, and the playback they send back. Pub/sub
 * (pubsub-bus.ts) is the one implementation today; a Streams or Cluster one implements the same members, and
 * the calls do not change.
 */
export interface Bus {
  /** Where one call's audio goes, announced in its call.start. */
  audioChannel (interactionId: string): string
  publishEvent (event: CallEvent): Promise<void>
  /** Publishes one frame and reports its fate to `outcome`; within a call, publish order is call order. */
  publishAudio (header: AudioFrameHeader, pcm: Buffer, outcome: PublishOutcome): void
  /** Starts delivering one call's playback messages to the receiver; until then nothing is subscribed. */
  subscribePlayback (interactionId: string): void
  unsubscribePlayback (interactionId: string): void
  /** The one receiver of every call's playback messages, which finds the call by its id. */
  receivePlayback (receiver: PlaybackReceiver): void
  /** True while what is published now reaches Redis without waiting: readiness. */
  readonly connected: boolean
  /** Flushes what it can, then closes every connection. */
  close (): Promise<void>
}

export type PlaybackReceiver = (interactionId: string, message: Buffer) => void

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
