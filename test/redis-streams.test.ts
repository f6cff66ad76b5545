import { Writable } from 'node:stream'
import { Redis } from 'ioredis'
import pino from 'pino'
import t, { type Test } from 'tap'
import { audioStreamKey } from '../src/bus/channels.js'
import { RedisBus } from '../src/bus/redis-bus.js'
import { streamsTransport } from '../src/bus/transports.js'
import { createMetrics } from '../src/metrics.js'
import type { CallStartEvent, CallStopEvent } from '../src/bus/call-events.js'
import { ProviderClient, exotelStrings, pcmFrame } from './helpers/exotel.js'
import { startGateway, waitReady, type Gateway } from './helpers/gateway.js'
import { toEntry, type StreamEntry } from './helpers/redis-cluster.js'
import { TestRedis } from './helpers/redis-server.js'
import { Collected } from './helpers/waiter.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

type Entry = StreamEntry

/** A reader of the gateway's streams, as a worker in any language would be: XREAD with BLOCK, so it waits on Redis. */
async function reader (t: Test, url: string): Promise<Redis> {
  const client = new Redis(url, { maxRetriesPerRequest: null })
  t.teardown(() => client.disconnect())
  return client
}

/** Reads `key` from `after` until `done` says the entries so far are enough, blocking on Redis between reads. */
async function readUntil (client: Redis, key: string, done: (entries: Entry[]) => boolean, after = '0'): Promise<Entry[]> {
  const entries: Entry[] = []
  let last = after
  while (!done(entries)) {
    const reply = await client.xreadBuffer('BLOCK', 10_000, 'STREAMS', key, last) as Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null
    if (reply === null) throw new Error(`nothing more on ${key} after ${last} within 10 s (have ${entries.length})`)
    const got = reply[0][1].map(toEntry)
    entries.push(...got)
    last = got[got.length - 1].id
  }
  return entries
}

/** Call events from the events stream, parsed, until `done` is satisfied. */
async function eventsUntil (client: Redis, gateway: Gateway, done: (events: Array<CallStartEvent | CallStopEvent>) => boolean) {
  const entries = await readUntil(client, `${gateway.prefix}calls`, (entries) => done(parse(entries)))
  return parse(entries)
  function parse (entries: Entry[]) {
    return entries.map(({ fields }) => {
      const event = JSON.parse(fields.event.toString()) as CallStartEvent | CallStopEvent
      if (fields.type.toString() !== event.type) throw new Error('type field differs from the event')
      return event
    })
  }
}

/**
 * Starts an Exotel call and waits for its call.start on the events stream (messages before the call is accepted are
 * few by design): its audio stream's key.
 */
async function startCall (worker: Redis, gateway: Gateway, client: ProviderClient, callSid: string): Promise<string> {
  const starts = (events: Array<CallStartEvent | CallStopEvent>) => events.filter((event) => event.type === 'call.start' && event.interaction_id === callSid)
  const before = (await worker.xrange(`${gateway.prefix}calls`, '-', '+'))
    .filter(([, fields]) => fields[1] === 'call.start' && (JSON.parse(fields[3]) as CallStartEvent).interaction_id === callSid).length
  client.send(exotelStrings.start(callSid))
  const seen = (await eventsUntil(worker, gateway, (events) => starts(events).length > before))
  return (starts(seen).at(-1) as CallStartEvent).audio_stream as string
}

function frameEntries (entries: Entry[]): Entry[] {
  return entries.filter(({ fields }) => fields.pcm !== undefined)
}

async function streamsGateway (t: Test, url: string, env: Record<string, string> = {}) {
  const gateway = await startGateway(t, url, { REDIS_TRANSPORT: 'streams', ...env })
  await waitReady(gateway)
  return gateway
}

t.test('a worker that joins after the call started reads every frame from seq 1, then the end entry', async (t) => {
  const gateway = await streamsGateway(t, redis.url)
  const worker = await reader(t, redis.url)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  client.send(exotelStrings.start('CAlate'))
  const [start] = await eventsUntil(worker, gateway, (events) => events.length >= 1) as [CallStartEvent]
  t.match(start, { type: 'call.start', transport: 'streams', sharded: false, audio_channel: null })
  t.match(start.audio_stream, new RegExp(`^${gateway.prefix}audio:\\{~ACxxxxxxxxxxxxxxxxxxxxxxxx:CAlate\\}:\\d{13}$`),
    'one stream per call.start: the call tag and when this stream of the call started')
  const audio = start.audio_stream as string
  for (let i = 0; i < 30; i++) client.send(exotelStrings.media('MZCAlate', i + 2, i + 1, i * 20, pcmFrame(320, i)))

  // The worker joins late: 30 frames are already out. It reads from 0, as a worker that restarts would.
  await readUntil(worker, audio, (entries) => entries.length >= 30)
  client.send(exotelStrings.stop('CAlate', 'MZCAlate', 40))
  t.equal((await client.closed).code, 1000)
  const entries = await readUntil(worker, audio, (entries) => entries.some(({ fields }) => fields.end !== undefined))
  const frames = frameEntries(entries)
  t.same(frames.map(({ id }) => id), Array.from({ length: 30 }, (_, i) => `0-${i + 1}`), 'entry ids are 0-<seq>')
  t.same(frames.map(({ fields }) => Number(fields.seq)), Array.from({ length: 30 }, (_, i) => i + 1), 'every frame from seq 1, in order')
  t.ok(frames.every(({ fields }, i) => fields.pcm.equals(pcmFrame(320, i))), 'the PCM is a binary field, byte for byte')
  t.same(frames.slice(0, 2).map(({ fields }) => [fields.vendor_seq.toString(), fields.timestamp_ms.toString(), fields.sample_rate.toString()]),
    [['2', '0', '8000'], ['3', '20', '8000']], 'the header fields as decimal strings')
  const end = entries[entries.length - 1]
  t.equal(end.id, '0-31', 'the end entry follows the last frame')
  t.same(Object.fromEntries(Object.entries(end.fields).map(([k, v]) => [k, v.toString()])), { end: 'callended', frames: '30', frames_lost: '0' })

  const events = await eventsUntil(worker, gateway, (events) => events.some((event) => event.type === 'call.stop'))
  t.match(events.find((event) => event.type === 'call.stop'), { reason: 'callended', frames: 30, frames_lost: 0 })
})

t.test('the audio stream expires from its first frame, and REDIS_STREAM_TTL_S after the call', async (t) => {
  const gateway = await streamsGateway(t, redis.url, { REDIS_STREAM_TTL_S: '1', CALL_CLAIM_TTL_MS: '5000' })
  const worker = await reader(t, redis.url)
  const events = await reader(t, redis.url)
  await worker.config('SET', 'notify-keyspace-events', 'Egx')
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  const audio = await startCall(worker, gateway, client, 'CAexpire')
  client.send(exotelStrings.media('MZCAexpire', 2, 1, 0, pcmFrame(320, 0)))
  await readUntil(worker, audio, (entries) => entries.length === 1)
  const live = await worker.pttl(audio)
  t.ok(live > 1000 && live <= 6000, `while the call lives, the stream outlives its claim: ${live} ms`)

  const expired = new Promise<void>((resolve) => {
    events.on('message', (_channel: string, key: string) => { if (key === audio) resolve() })
  })
  await events.subscribe('__keyevent@0__:expired')
  client.send(exotelStrings.stop('CAexpire', 'MZCAexpire', 3))
  await client.closed
  await readUntil(worker, audio, (entries) => entries.some(({ fields }) => fields.end !== undefined))
  const after = await worker.pttl(audio)
  t.ok(after > 0 && after <= 1000, `after call.stop it expires in REDIS_STREAM_TTL_S: ${after} ms`)
  await expired
  t.equal(await worker.exists(audio), 0, 'Redis deleted it')
})

t.test('REDIS_STREAM_MAXLEN bounds a live call\'s stream, keeping the newest frames', async (t) => {
  const gateway = await streamsGateway(t, redis.url, { REDIS_STREAM_MAXLEN: '100' })
  const worker = await reader(t, redis.url)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  const audio = await startCall(worker, gateway, client, 'CAmaxlen')
  for (let i = 0; i < 400; i++) client.send(exotelStrings.media('MZCAmaxlen', i + 2, i + 1, i * 20, pcmFrame(320, i)))
  client.send(exotelStrings.stop('CAmaxlen', 'MZCAmaxlen', 500))
  await client.closed
  await readUntil(worker, audio, (entries) => entries.some(({ fields }) => fields.end !== undefined))
  // Read whole once the call has ended: a reader that fell behind while it streamed would find the middle trimmed.
  const kept = frameEntries((await worker.xrangeBuffer(audio, '-', '+') as Array<[Buffer, Buffer[]]>).map(toEntry))
  t.ok(kept.length >= 100 && kept.length < 300, `about MAXLEN frames are kept: ${kept.length} of 400`)
  t.equal(Number(kept[kept.length - 1].fields.seq), 400, 'the newest is there')
  t.same(kept.map(({ fields }) => Number(fields.seq)), Array.from({ length: kept.length }, (_, i) => 400 - kept.length + i + 1), 'a run of the newest, in order')
})

t.test('a Redis restart mid-call: what waited goes out in order after it, and what the bound dropped is counted', async (t) => {
  const own = await TestRedis.start()
  t.teardown(() => own.stop())
  // Room for about 20 of the 40 frames sent while Redis is down.
  const gateway = await streamsGateway(t, own.url, { REDIS_BUFFER_MAX_BYTES: String(20 * (320 + 896) + 8 * 1024) })
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  const before = await reader(t, own.url)
  const audio = await startCall(before, gateway, client, 'CArestart')
  let seq = 1
  const send = (count: number): void => {
    for (let i = 0; i < count; i++, seq++) client.send(exotelStrings.media('MZCArestart', seq + 1, seq, (seq - 1) * 20, pcmFrame(320, seq)))
  }
  send(5)
  await readUntil(before, audio, (entries) => entries.length === 5)
  before.disconnect()

  await own.stop()
  await gateway.logs.waitFor((line) => line.msg === 'redis connection lost, reconnecting')
  send(40)
  await own.start()
  await gateway.logs.waitFor((line) => line.msg === 'redis connected' && line.buffered !== 0)
  send(5)
  client.send(exotelStrings.stop('CArestart', 'MZCArestart', 60))
  t.equal((await client.closed).code, 1000, 'the call never noticed')

  const worker = await reader(t, own.url)
  const entries = await readUntil(worker, audio, (entries) => entries.some(({ fields }) => fields.end !== undefined))
  const [stop] = (await eventsUntil(worker, gateway, (events) => events.some((event) => event.type === 'call.stop')))
    .filter((event) => event.type === 'call.stop') as [CallStopEvent]
  const seqs = frameEntries(entries).map(({ fields }) => Number(fields.seq))
  t.ok(seqs.every((seq, i) => i === 0 || seq > seqs[i - 1]), 'strictly in order')
  t.ok(seqs[0] > 5, 'Redis kept nothing across its restart (no persistence): frames 1-5 went with it, after it took them')
  t.ok(stop.frames_lost > 0, `the bound dropped some of the 40 that waited: ${stop.frames_lost}`)
  t.equal(seqs.length + stop.frames_lost, 45, 'every frame sent after the restart began is on the stream or counted lost')
  t.equal(seqs.at(-1), 50, 'the call goes on after Redis came back: its last frame is there')
  t.match(stop, { frames: 50 })
  t.match(Object.fromEntries(Object.entries(entries[entries.length - 1].fields).map(([k, v]) => [k, v.toString()])),
    { frames: '50', frames_lost: String(stop.frames_lost) })
})

t.test('a later stream of the same call gets a stream of its own: neither call loses a frame to the other', async (t) => {
  const gateway = await streamsGateway(t, redis.url)
  const worker = await reader(t, redis.url)
  const audios: string[] = []
  for (const [round, frames] of [[0, 50], [1, 70]]) {
    const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
    audios.push(await startCall(worker, gateway, client, 'CAagain'))
    for (let i = 0; i < frames; i++) client.send(exotelStrings.media('MZCAagain', i + 2, i + 1, i * 20, pcmFrame(320, round * 1000 + i)))
    client.send(exotelStrings.stop('CAagain', 'MZCAagain', frames + 2))
    t.equal((await client.closed).code, 1000)
  }
  t.not(audios[0], audios[1], 'two streams')
  for (const [round, frames] of [[0, 50], [1, 70]]) {
    const entries = await readUntil(worker, audios[round], (entries) => entries.some(({ fields }) => fields.end !== undefined))
    const kept = frameEntries(entries)
    t.equal(kept.length, frames, `call ${round + 1}: every frame`)
    t.ok(kept.every(({ fields }, i) => Number(fields.seq) === i + 1 && fields.pcm.equals(pcmFrame(320, round * 1000 + i))), `call ${round + 1}: its own audio, in order`)
    t.equal(entries.at(-1)?.fields.frames.toString(), String(frames))
  }
})

t.test('READONLY from a demoted master is a failover under way: frames are sent again, through a shutdown, until Redis takes them', async (t) => {
  const own = await TestRedis.start()
  t.teardown(() => own.stop())
  const primary = await TestRedis.start()
  t.teardown(() => primary.stop())
  const prefix = 'readonly:'
  const logs = new Collected<{ msg: string }>()
  const log = pino({ level: 'info' }, new Writable({
    write (chunk: Buffer, _encoding, done) {
      logs.push(JSON.parse(chunk.toString()) as { msg: string })
      done()
    }
  }))
  const bus = new RedisBus({
    target: { url: own.url, clusterNodes: null },
    transport: streamsTransport(prefix, { maxLen: 1000, ttlMs: 60_000, claimTtlMs: 30_000, eventsMaxLen: 1000 }),
    prefix,
    log,
    metrics: createMetrics({ tenantLabel: false }),
    bufferMaxBytes: 1024 * 1024,
    maxEventsPerCall: 100,
    stallTimeoutMs: 60_000
  })
  await logs.waitFor((line) => line.msg === 'redis connected')
  const admin = await reader(t, own.url)
  // Redis refuses a write to a replica before MONITOR would show it: its error count says each attempt.
  const refusals = async (): Promise<number> => Number(/errorstat_READONLY:count=(\d+)/.exec(await admin.info('errorstats'))?.[1] ?? 0)
  const refusedMore = async (than: number): Promise<number> => {
    for (let count = await refusals(); ; count = await refusals()) if (count > than) return count
  }
  await admin.replicaof('127.0.0.1', String(primary.port))

  const call = { tenantId: null, tenantVerified: false, interactionId: 'CAreadonly', epoch: 1 }
  const fates = { published: 0, failed: 0 }
  const outcome = { published: () => fates.published++, failed: () => fates.failed++ }
  for (let seq = 1; seq <= 10; seq++) {
    bus.publishAudio(call, { interaction_id: 'CAreadonly', tenant_id: null, seq, vendor_seq: null, timestamp_ms: (seq - 1) * 20, sample_rate: 8000, encoding: 'pcm_s16le', channels: 1 },
      pcmFrame(320, seq), outcome)
  }
  const refused = await refusedMore(0)
  t.equal(fates.published + fates.failed, 0, 'READONLY lost nothing: the frames wait')

  bus.flushUntil(Date.now() + 30_000)
  const closed = bus.close()
  await refusedMore(refused + 10)
  t.pass('the frames are sent again while the bus closes')
  await admin.replicaof('NO', 'ONE')
  await closed
  t.same(fates, { published: 10, failed: 0 }, 'all ten taken once Redis took writes again, before close() returned')
  const written = (await admin.xrangeBuffer(audioStreamKey(prefix, call), '-', '+') as Array<[Buffer, Buffer[]]>).map(([id]) => id.toString())
  t.same(written, Array.from({ length: 10 }, (_, i) => `0-${i + 1}`), 'in order, each once')
})
