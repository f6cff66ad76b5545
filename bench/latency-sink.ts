/**
 * Reads every call's audio as it reaches Redis and records, per frame, the time from its intended send to its
 * arrival in an HdrHistogram; counts loss (by the generator's count), duplicates and reordering. Prints "ready" once
 * listening, and a JSON summary on SIGTERM (with its own CPU time, as it shares CPU 0 with the load generator).
 *
 * BENCH_TRANSPORT=pubsub (the default): PSUBSCRIBE to every audio channel. BENCH_TRANSPORT=streams: the calls' audio
 * streams, found from the events stream's call.start (`audio_stream`), read with one XREAD over the events stream and
 * every live call's audio stream per round trip, so reading does not fall behind by a command per call. A frame's
 * arrival is when the XREAD reply holding it is parsed: its time in Redis plus at most one round trip of the loop.
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
/** Streams: XREAD round trips, and the entries they brought. */
let reads = 0
let entriesRead = 0
/** One bit per (call, seq): a Set of strings would allocate per frame and put the sink's GC into the latencies. */
const seen = new Map<number, Uint8Array>()
const cpuBefore = process.cpuUsage()

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

/**
 * BENCH_SLOW_MS: frames later than this are also counted by the second of the step they were meant to be sent in
 * (from the first frame's), and printed to stderr at the end: a tail at the start of the load is told from one
 * spread through it.
 */
const SLOW_MS = Number(process.env.BENCH_SLOW_MS ?? 0)
const slowBySecond = new Map<number, number>()
let firstIntendedNs = 0

/** One frame's PCM (starting with the stamp), arrived at `arrived` (ns). */
function record (pcm: Buffer, arrived: number): void {
  const { call, seq, intendedNs } = readStamp(pcm)
  if (!firstSighting(call, seq)) {
    duplicates++
    return
  }
  received++
  if (seq < (lastSeq.get(call) ?? 0)) reordered++
  else lastSeq.set(call, seq)
  latency.recordValue(Math.max(1, Math.round((arrived - intendedNs) / 1000)))
  if (SLOW_MS > 0) {
    if (firstIntendedNs === 0 || intendedNs < firstIntendedNs) firstIntendedNs = intendedNs
    if (arrived - intendedNs > SLOW_MS * 1e6) {
      const second = Math.floor((intendedNs - firstIntendedNs) / 1e9)
      slowBySecond.set(second, (slowBySecond.get(second) ?? 0) + 1)
    }
  }
}

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')

async function pubSub (): Promise<void> {
  redis.on('pmessageBuffer', (_pattern: Buffer, _channel: Buffer, message: Buffer) => {
    const arrived = nowNs()
    record(message.subarray(4 + message.readUInt32BE(0)), arrived)
  })
  await redis.psubscribe(`${prefix}audio:*`)
  process.stdout.write('ready\n')
}

type Entry = [id: Buffer, fields: Buffer[]]
const PCM = Buffer.from('pcm')
const INTERVAL_MS = Number(process.env.BENCH_XREAD_INTERVAL_MS ?? 1)
const END = Buffer.from('end')

async function streams (): Promise<void> {
  const events = `${prefix}calls`
  // From the events stream's newest entry on: earlier steps' calls (their streams outlive them) are not this step's.
  let eventsId = (await redis.xrevrange(events, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0'
  /** Each live call's audio stream and the id of the last entry read from it. */
  const audio = new Map<string, string>()
  process.stdout.write('ready\n')
  // Until SIGTERM, which prints the summary and exits. Round trips start at least INTERVAL_MS apart: back to back,
  // each brought ~5 frames at 200 calls and the reads (each over every live stream) cost Redis and this process more
  // CPU, on CPU 0 beside the load generator, than the frames did. The wait adds at most that much to a frame's latency.
  let started = 0
  for (;;) {
    const wait = started + INTERVAL_MS - performance.now()
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
    started = performance.now()
    const keys = [events, ...audio.keys()]
    const reply = await redis.xreadBuffer('COUNT', 500, 'BLOCK', 200, 'STREAMS', ...keys, eventsId, ...audio.values()) as Array<[key: Buffer, entries: Entry[]]> | null
    const arrived = nowNs()
    reads++
    if (reply === null) continue
    for (const [keyBuffer, entries] of reply) {
      const key = keyBuffer.toString()
      if (key === events) {
        for (const [id, fields] of entries) {
          eventsId = id.toString()
          const at = fields.findIndex((field, index) => index % 2 === 0 && field.toString() === 'event')
          const event = JSON.parse(fields[at + 1].toString()) as { type: string, audio_stream?: string | null }
          if (event.type === 'call.start' && typeof event.audio_stream === 'string' && !audio.has(event.audio_stream)) audio.set(event.audio_stream, '0-0')
        }
        continue
      }
      let ended = false
      entriesRead += entries.length
      for (const [, fields] of entries) {
        for (let i = 0; i < fields.length; i += 2) {
          if (fields[i].equals(PCM)) record(fields[i + 1], arrived)
          else if (fields[i].equals(END)) ended = true
        }
      }
      // The end entry is the stream's last: nothing more to read from it.
      if (ended) audio.delete(key)
      else audio.set(key, entries.at(-1)![0].toString())
    }
  }
}

process.on('SIGTERM', () => {
  const at = (p: number): number => latency.getValueAtPercentile(p) / 1000
  const cpu = process.cpuUsage(cpuBefore)
  if (SLOW_MS > 0) process.stderr.write(`sink: frames later than ${SLOW_MS} ms, by second of the load: ${JSON.stringify(Object.fromEntries([...slowBySecond].sort((a, b) => a[0] - b[0])))}\n`)
  process.stdout.write(`${JSON.stringify({ received, duplicates, reordered, p50_ms: at(50), p99_ms: at(99), p999_ms: at(99.9), max_ms: latency.maxValue / 1000, cpu_us: cpu.user + cpu.system, reads, entries_read: entriesRead })}\n`)
  process.exit(0)
})

await (process.env.BENCH_TRANSPORT === 'streams' ? streams() : pubSub())
