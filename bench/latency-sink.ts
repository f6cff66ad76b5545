/**
 * Subscribes to every audio channel and records, per frame, the time from its intended send to its arrival on
 * Redis in an HdrHistogram; counts loss (by the generator's count), duplicates and reordering. Prints "ready" once
 * subscribed, and a JSON summary on SIGTERM.
 */
import hdr from 'hdr-histogram-js'
import { Redis } from 'ioredis'
import { nowNs, readStamp } from './frame-stamp.js'
import { exitWithParent } from './lifeline.js'

exitWithParent()

const prefix = process.env.REDIS_PREFIX ?? 'rtaa:'
const latency = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
const lastSeq = new Map<number, number>()
let received = 0
let duplicates = 0
let reordered = 0
/** One bit per (call, seq): a Set of strings would allocate per frame and put the sink's GC into the latencies. */
const seen = new Map<number, Uint8Array>()

function firstSighting (call: number, seq: number): boolean {
  let bits = seen.get(call)
  if (bits === undefined || bits.length <= seq >> 3) {
    const grown = new Uint8Array(Math.max(1024, (seq >> 3) * 2))
    if (bits !== undefined) grown.set(bits)
    seen.set(call, grown)
    bits = grown
  }
  const mask = 1 << (seq & 7)
  if ((bits[seq >> 3] & mask) !== 0) return false
  bits[seq >> 3] |= mask
  return true
}

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
redis.on('pmessageBuffer', (_pattern: Buffer, _channel: Buffer, message: Buffer) => {
  const arrived = nowNs()
  const pcm = message.subarray(4 + message.readUInt32BE(0))
  const { call, seq, intendedNs } = readStamp(pcm)
  if (!firstSighting(call, seq)) {
    duplicates++
    return
  }
  received++
  if (seq < (lastSeq.get(call) ?? 0)) reordered++
  else lastSeq.set(call, seq)
  latency.recordValue(Math.max(1, Math.round((arrived - intendedNs) / 1000)))
})
await redis.psubscribe(`${prefix}audio:*`)
process.stdout.write('ready\n')
process.on('SIGTERM', () => {
  const at = (p: number): number => latency.getValueAtPercentile(p) / 1000
  process.stdout.write(`${JSON.stringify({ received, duplicates, reordered, p50_ms: at(50), p99_ms: at(99), p999_ms: at(99.9), max_ms: latency.maxValue / 1000 })}\n`)
  process.exit(0)
})
