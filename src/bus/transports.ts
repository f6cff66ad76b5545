import { Command, ReplyError, type Cluster, type Redis } from 'ioredis'
import { AudioFrameEncoder, encodeAudioFrame, type AudioFrameHeader, type FixedHeader } from './audio-frame.js'
import { PublishDropped } from './bus.js'
import type { CallEvent } from './call-events.js'
import { audioChannel, audioStreamKey, callsChannel, trackRefs, type CallRef } from './channels.js'

/** One Redis, or a Redis Cluster: the commands the bus sends are the same. */
export type RedisClient = Redis | Cluster

/** REDIS_TRANSPORT. */
export type TransportName = 'pubsub' | 'streams'

/**
 * What differs between pub/sub and Streams: the bytes a frame waits as, and the commands that write a frame or an
 * event. Everything else (order, the outage buffer, retries, claims, playback) is the bus's, the same for both.
 */
export interface Transport {
  readonly name: TransportName
  /** Where a call's frames are written: its audio channel (pub/sub) or its audio stream (Streams). */
  audioTarget (call: CallRef): string
  /** The bytes a frame is held as until it is written. */
  frameBytes (header: AudioFrameHeader, pcm: Buffer): Buffer
  /**
   * A track's encoder of those bytes, header and all, made once per call (pub/sub); null where a frame's bytes are its
   * PCM alone and its header goes beside it (Streams). On one Redis its frames are whole PUBLISH commands, which
   * writeEncoded sends as they are; on a cluster they are messages, for writeFrame.
   */
  frameEncoder (target: string, fixed: FixedHeader): AudioFrameEncoder | null
  /** Whether the encoder's frames are whole commands (writeEncoded) rather than messages (writeFrame). */
  readonly encodesCommands: boolean
  /** Sends a frame frameEncoder wrote as a whole command. */
  writeEncoded (redis: RedisClient, target: string, command: Buffer): Promise<unknown>
  /** Whether writeFrame needs the frame's header beside its bytes (Streams), or the bytes hold it (pub/sub). */
  readonly keepsHeader: boolean
  /** Writes one frame to `target` (the call's audio channel, or its audio stream); `header` if it keeps headers. */
  writeFrame (redis: RedisClient, target: string, header: AudioFrameHeader | null, bytes: Buffer): Promise<unknown>
  /** Writes one event of `call` (Streams ends the call's audio streams with its call.stop). */
  writeEvent (redis: RedisClient, event: CallEvent, call: CallRef): Promise<unknown>
  /** How long a live call's audio stream lives past a claim's renewal: REDIS_STREAM_TTL_S (0: nothing to expire). */
  readonly liveStreamTtlMs: number
}

/** PUBLISH, or SPUBLISH on a Redis Cluster: a message reaches whoever listens now, and nothing is kept. */
export function pubSubTransport (prefix: string, sharded: boolean): Transport {
  const events = callsChannel(prefix)
  const publish = (redis: RedisClient, channel: string, message: Buffer | string): Promise<unknown> =>
    sharded ? redis.spublish(channel, message) : redis.publish(channel, message)
  return {
    name: 'pubsub',
    audioTarget: (call) => audioChannel(prefix, call),
    keepsHeader: false,
    liveStreamTtlMs: 0,
    frameBytes: encodeAudioFrame,
    // SPUBLISH on a cluster goes through ioredis, which routes it by its channel's slot.
    frameEncoder: (channel, fixed) => new AudioFrameEncoder(fixed, sharded ? null : commandUpToLastArgument('PUBLISH', channel)),
    encodesCommands: !sharded,
    // ioredis answers a command sent so with the command's own promise.
    writeEncoded: (redis, channel, bytes) => (redis as Redis).sendCommand(new EncodedCommand('publish', channel, bytes)) as Promise<unknown>,
    writeFrame: (redis, channel, _header, bytes) => publish(redis, channel, bytes),
    writeEvent: (redis, event) => publish(redis, events, JSON.stringify(event))
  }
}

export interface StreamsSettings {
  /** XADD MAXLEN ~ of a call's audio stream while the call lives (REDIS_STREAM_MAXLEN). */
  maxLen: number
  /** A call's audio stream is deleted this long after its call.stop (REDIS_STREAM_TTL_S). */
  ttlMs: number
  /** A claim's lifetime (CALL_CLAIM_TTL_MS): a live call's stream outlives its last renewal by ttlMs. */
  claimTtlMs: number
  /** XADD MAXLEN ~ of the events stream (REDIS_EVENTS_MAXLEN). */
  eventsMaxLen: number
}

/**
 * Redis Streams (docs/redis-contract.md, "Streams mode"): a stream per call's audio, whose entry ids are `0-<seq>`,
 * and one stream of call events. The explicit ids let Redis itself refuse a frame that would land behind a later one
 * of its call, so a retry after a failover either lands in order or is counted lost, and never lands twice.
 */
export function streamsTransport (prefix: string, { maxLen, ttlMs, claimTtlMs, eventsMaxLen }: StreamsSettings): Transport {
  const events = callsChannel(prefix)
  return {
    name: 'streams',
    audioTarget: (call) => audioStreamKey(prefix, call),
    keepsHeader: true,
    liveStreamTtlMs: ttlMs,
    frameBytes: (_header, pcm) => pcm,
    frameEncoder: () => null,
    encodesCommands: false,
    writeEncoded: () => Promise.reject(new Error('Streams frames are not encoded as commands')),
    writeFrame: (redis, key, kept, pcm) => {
      const header = kept as AudioFrameHeader
      const added = appendFrame(redis, key, maxLen, header, pcm)
      if (header.seq !== 1) return added
      // Expiring from its first frame on (sent right behind it), as the claim renewals keep it: no stream outlives
      // a dead process.
      return Promise.all([added, redis.pexpire(key, claimTtlMs + ttlMs)])
    },

    writeEvent: async (redis, event, call) => {
      const json = JSON.stringify(event)
      if (event.type !== 'call.stop') return await redis.xadd(events, 'MAXLEN', '~', eventsMaxLen, '*', 'type', event.type, 'event', json)
      // Each audio stream ends with an entry saying so, then lives REDIS_STREAM_TTL_S for late readers: the PEXPIRE
      // goes right behind the XADD, so no reader of the end entry finds the stream without its expiry.
      await Promise.all([
        redis.xadd(events, 'MAXLEN', '~', eventsMaxLen, '*', 'type', event.type, 'event', json),
        ...trackRefs(call).flatMap((ref) => {
          const key = audioStreamKey(prefix, ref)
          const counts = ref.track === undefined ? event : event.tracks[ref.track] ?? { frames: 0, frames_lost: 0 }
          return [
            // `0-*`: the id after the stream's last, whatever the counts say (a worker's call ended by its primary is
            // counted as of up to a second before).
            redis.xadd(key, 'MAXLEN', '~', maxLen, '0-*', 'end', event.reason, 'frames', counts.frames, 'frames_lost', counts.frames_lost),
            redis.pexpire(key, ttlMs)
          ]
        })
      ])
    }
  }
}

/** A command's RESP bytes up to its last argument's `$`: `*3\r\n$7\r\nPUBLISH\r\n$<n>\r\n<channel>\r\n$`. */
function commandUpToLastArgument (name: string, channel: string): Buffer {
  return Buffer.from(`*3\r\n$${name.length}\r\n${name}\r\n$${Buffer.byteLength(channel)}\r\n${channel}\r\n$`)
}

/**
 * A command whose RESP bytes were written with its message (AudioFrameEncoder): ioredis queues it for its reply as
 * any other, and writes the bytes as they are instead of encoding the arguments again.
 */
class EncodedCommand extends Command {
  readonly #bytes: Buffer

  constructor (name: string, channel: string, bytes: Buffer) {
    super(name, [channel], { replyEncoding: 'utf8' })
    this.#bytes = bytes
  }

  override toWritable (): Buffer {
    return this.#bytes
  }
}

/**
 * XADDs one frame with the id `0-<seq>`. Redis refuses an id not above the stream's last one: either this very entry
 * was written by an earlier attempt whose answer was lost (then it is there, and that is success), or a later entry
 * overtook it, and then it is lost.
 */
async function appendFrame (redis: RedisClient, key: string, maxLen: number, header: AudioFrameHeader, pcm: Buffer): Promise<void> {
  const { seq } = header
  const id = `0-${seq}`
  try {
    const fields = ['seq', seq, 'vendor_seq', header.vendor_seq ?? '', 'timestamp_ms', header.timestamp_ms, 'sample_rate', header.sample_rate, 'pcm', pcm]
    if (header.track !== undefined) fields.push('track', header.track)
    await redis.xadd(key, 'MAXLEN', '~', maxLen, id, ...fields)
  } catch (err) {
    if (!(err instanceof ReplyError) || !(err as Error).message.includes('equal or smaller')) throw err
    // Its own entry, that is: not the end entry, which takes the id after the last frame written.
    const [entry] = await redis.xrange(key, id, id)
    if (entry === undefined || entry[1][0] !== 'seq' || entry[1][1] !== String(seq)) throw new PublishDropped('out_of_order')
  }
}
