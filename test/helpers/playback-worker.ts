import { Redis } from 'ioredis'
import type { Test } from 'tap'

export interface PlaybackWorker {
  /** Publishes PCM s16le mono at `sampleRate`, in the envelope docs/redis-contract.md ("Speak into a call") describes. */
  audio (channel: string, sampleRate: number, pcm: Buffer): Promise<void>
  /** Publishes a JSON command (mark, clear, hangup). */
  command (channel: string, command: object): Promise<void>
  /** Publishes bytes as they are, for what a well-behaved worker would not send. */
  raw (channel: string, message: Buffer | string): Promise<void>
}

/** What a worker does to speak into a call: PUBLISH to its playback channel, on a connection of its own. */
export function playbackWorker (t: Test, redisUrl: string): PlaybackWorker {
  const client = new Redis(redisUrl)
  t.teardown(() => client.disconnect())
  return {
    async audio (channel, sampleRate, pcm) {
      const header = Buffer.from(JSON.stringify({ sample_rate: sampleRate, encoding: 'pcm_s16le', channels: 1 }))
      const length = Buffer.alloc(4)
      length.writeUInt32BE(header.length)
      await client.publish(channel, Buffer.concat([length, header, pcm]))
    },
    async command (channel, command) {
      await client.publish(channel, JSON.stringify(command))
    },
    async raw (channel, message) {
      await client.publish(channel, message)
    }
  }
}

/**
 * The most audio (ms) a vendor had been sent but could not yet have played, over messages `{ at, ms }` in the order
 * they arrived (at: arrival time in ms, ms: the audio the message carries): what the gateway's pacing bounds by its lead.
 */
export function mostUnplayedMs (messages: ReadonlyArray<{ at: number, ms: number }>): number {
  let sentMs = 0
  let most = 0
  for (const { at, ms } of messages) {
    sentMs += ms
    most = Math.max(most, sentMs - (at - messages[0].at))
  }
  return most
}
