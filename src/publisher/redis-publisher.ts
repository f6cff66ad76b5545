import type { Log } from '../logger.js'
import { Redis } from 'ioredis'
import type { CallEvent } from '../calls/call-events.js'
import { encodeAudioFrame, type AudioFrameHeader } from '../redis/audio-frame.js'
import { audioChannel, callsChannel } from '../redis/channels.js'
import type { Publisher } from './publisher.js'

export interface RedisPublisherOptions {
  url: string
  prefix: string
  log: Log
  /** How long close() waits for QUIT before it drops the connection. */
  quitTimeoutMs?: number
}

/** PUBLISH-based publisher on one ioredis connection of its own, auto-pipelined. */
export class RedisPublisher implements Publisher {
  readonly #redis: Redis
  readonly #prefix: string
  readonly #callsChannel: string
  readonly #log: Log
  readonly #quitTimeoutMs: number
  #wasConnected = false

  constructor (options: RedisPublisherOptions) {
    this.#prefix = options.prefix
    this.#callsChannel = callsChannel(options.prefix)
    this.#log = options.log
    this.#quitTimeoutMs = options.quitTimeoutMs ?? 2000
    this.#redis = new Redis(options.url, { enableAutoPipelining: true, connectionName: 'rtaa-ingest:publisher' })
    this.#redis.on('ready', () => {
      this.#wasConnected = true
      this.#log.info('redis connected')
    })
    this.#redis.on('close', () => {
      if (this.#wasConnected) this.#log.warn('redis connection lost, reconnecting')
      this.#wasConnected = false
    })
    // ioredis emits an error on every failed reconnect; the state changes above carry the story at warn.
    this.#redis.on('error', (err) => this.#log.debug({ err }, 'redis connection error'))
  }

  get connected (): boolean {
    return this.#redis.status === 'ready'
  }

  audioChannel (interactionId: string): string {
    return audioChannel(this.#prefix, interactionId)
  }

  async publishEvent (event: CallEvent): Promise<void> {
    await this.#redis.publish(this.#callsChannel, JSON.stringify(event))
  }

  async publishAudio (header: AudioFrameHeader, pcm: Buffer): Promise<void> {
    await this.#redis.publish(audioChannel(this.#prefix, header.interaction_id), encodeAudioFrame(header, pcm))
  }

  async close (): Promise<void> {
    if (this.#redis.status === 'end') return
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<'timeout'>((resolve) => { timer = setTimeout(resolve, this.#quitTimeoutMs, 'timeout') })
    // QUIT is queued behind every publish already issued, so it flushes them; a dead Redis must not hold shutdown.
    const outcome = await Promise.race([this.#redis.quit().catch(() => 'failed'), timeout])
    clearTimeout(timer)
    if (outcome !== 'OK') {
      this.#log.warn({ outcome }, 'redis did not acknowledge QUIT, dropping the connection')
      this.#redis.disconnect()
    }
  }
}
