import { Redis } from 'ioredis'
import type { Test } from 'tap'
import type { CallEvent } from '../../src/bus/call-events.js'
import { decodeAudioFrame, type AudioFrameHeader } from '../../src/bus/audio-frame.js'
import type { Track } from '../../src/track.js'
import { Collected } from './waiter.js'

export interface Published {
  channel: string
  message: Buffer
}

/** Subscribes to everything under a prefix and keeps what Redis delivers, in order. */
export class Subscriber {
  readonly published = new Collected<Published>()
  readonly #prefix: string
  readonly #redis: Redis

  private constructor (redisUrl: string, prefix: string) {
    this.#prefix = prefix
    this.#redis = new Redis(redisUrl, { lazyConnect: true })
    this.#redis.on('pmessageBuffer', (_pattern: Buffer, channel: Buffer, message: Buffer) => {
      this.published.push({ channel: channel.toString(), message })
    })
  }

  static async start (t: Test, redisUrl: string, prefix: string): Promise<Subscriber> {
    const subscriber = new Subscriber(redisUrl, prefix)
    await subscriber.#redis.connect()
    await subscriber.#redis.psubscribe(`${prefix}*`)
    t.teardown(() => subscriber.#redis.disconnect())
    return subscriber
  }

  events (interactionId?: string): CallEvent[] {
    return this.published.items
      .filter(({ channel }) => channel === `${this.#prefix}calls`)
      .map(({ message }) => JSON.parse(message.toString()) as CallEvent)
      .filter((event) => interactionId === undefined || event.interaction_id === interactionId)
  }

  /** A call's frames; of its caller's track, or the one named, when it has two. */
  frames (interactionId: string, track: Track = 'inbound'): Array<{ header: AudioFrameHeader, pcm: Buffer }> {
    return this.published.items
      .filter(({ channel }) => this.#isAudioOf(channel, interactionId, track))
      .map(({ message }) => decodeAudioFrame(message))
  }

  /** A call's audio messages as Redis carried them, header and PCM, undecoded. */
  rawFrames (interactionId: string, track: Track = 'inbound'): Buffer[] {
    return this.published.items.filter(({ channel }) => this.#isAudioOf(channel, interactionId, track)).map(({ message }) => message)
  }

  /** The frames published on one channel, as call.start names it. */
  framesOn (channel: string): Array<{ header: AudioFrameHeader, pcm: Buffer }> {
    return this.published.items.filter((item) => item.channel === channel).map(({ message }) => decodeAudioFrame(message))
  }

  /** `{prefix}audio:{tenant:interaction_id}`, whatever the tenant, and `:outbound` after it for that track. */
  #isAudioOf (channel: string, interactionId: string, track: Track = 'inbound'): boolean {
    return channel.startsWith(`${this.#prefix}audio:{`) && channel.endsWith(`:${interactionId}}${track === 'inbound' ? '' : `:${track}`}`)
  }

  /** Channels in publish order for one call: 'start', 'audio', 'dtmf', 'stop'… */
  sequence (interactionId: string): string[] {
    return this.published.items.flatMap(({ channel, message }) => {
      if (this.#isAudioOf(channel, interactionId)) return ['audio']
      if (channel !== `${this.#prefix}calls`) return []
      const event = JSON.parse(message.toString()) as CallEvent
      return event.interaction_id === interactionId ? [event.type.slice('call.'.length)] : []
    })
  }

  waitForEvent (type: CallEvent['type'], interactionId: string): Promise<CallEvent> {
    const channel = `${this.#prefix}calls`
    return this.published.waitFor(({ channel: c, message }) => {
      if (c !== channel) return false
      const event = JSON.parse(message.toString()) as CallEvent
      return event.type === type && event.interaction_id === interactionId
    }, `${type} of ${interactionId}`).then(({ message }) => JSON.parse(message.toString()) as CallEvent)
  }
}
