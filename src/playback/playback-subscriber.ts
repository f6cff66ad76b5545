import { Redis } from 'ioredis'
import type { Log } from '../logger.js'
import { playbackChannel } from '../redis/channels.js'

export interface PlaybackSubscriberOptions {
  url: string
  prefix: string
  log: Log
  /** A message for a call no longer live here (it raced the unsubscribe). */
  orphaned: () => void
}

/**
 * One subscriber connection for every call's playback channel, not one per call. Each call subscribes while it
 * is live, so Redis delivers a call's playback only to the replica that holds the call. ioredis resubscribes after
 * a reconnect.
 */
export class PlaybackSubscriber {
  readonly #redis: Redis
  readonly #prefix: string
  readonly #log: Log
  readonly #listeners = new Map<string, (message: Buffer) => void>()

  constructor (options: PlaybackSubscriberOptions) {
    this.#prefix = options.prefix
    this.#log = options.log
    this.#redis = new Redis(options.url, { connectionName: 'rtaa-ingest:playback', maxRetriesPerRequest: null })
    this.#redis.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      const listener = this.#listeners.get(channel.toString())
      if (listener === undefined) options.orphaned()
      else listener(message)
    })
    this.#redis.on('error', (err) => this.#log.debug({ err }, 'playback subscriber connection error'))
  }

  subscribe (interactionId: string, listener: (message: Buffer) => void): void {
    const channel = playbackChannel(this.#prefix, interactionId)
    this.#listeners.set(channel, listener)
    this.#redis.subscribe(channel).catch((err: Error) => this.#log.warn({ err, channel }, 'playback subscribe failed'))
  }

  unsubscribe (interactionId: string): void {
    const channel = playbackChannel(this.#prefix, interactionId)
    if (!this.#listeners.delete(channel)) return
    this.#redis.unsubscribe(channel).catch((err: Error) => this.#log.debug({ err, channel }, 'playback unsubscribe failed'))
  }

  async close (): Promise<void> {
    this.#listeners.clear()
    this.#redis.disconnect()
  }
}
