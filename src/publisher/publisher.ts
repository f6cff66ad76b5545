import type { CallEvent } from '../calls/call-events.js'
import type { AudioFrameHeader } from '../redis/audio-frame.js'

/**
 * Where calls go. The Redis pub/sub publisher is the one implementation today; a Streams or Cluster (SPUBLISH)
 * publisher implements the same four members. Within a call, publish order must be call order.
 */
export interface Publisher {
  /** The channel name a consumer subscribes to for one call's audio, announced in call.start. */
  audioChannel (interactionId: string): string
  publishEvent (event: CallEvent): Promise<void>
  publishAudio (header: AudioFrameHeader, pcm: Buffer): Promise<void>
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
