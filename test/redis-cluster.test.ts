import { Cluster, Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { decodeAudioFrame } from '../src/bus/audio-frame.js'
import { ShardedSubscriber, StreamReader, TestRedisCluster } from './helpers/redis-cluster.js'
import { startGateway, waitReady, type Gateway } from './helpers/gateway.js'
import { ProviderClient, exotelStrings, pcmFrame, type Closed } from './helpers/exotel.js'
import { scrape } from './helpers/metrics.js'
import { Collected } from './helpers/waiter.js'

const cluster = await TestRedisCluster.start()
t.teardown(() => cluster.stop())

t.test('the test cluster: 3 masters with a replica each, call tags spread over the masters', async (t) => {
  const view = await cluster.topology()
  const masters = view.filter((node) => node.role === 'master')
  t.equal(masters.length, 3, 'three masters')
  t.same(masters.map((master) => view.filter((node) => node.masterId === master.id).length), [1, 1, 1], 'one replica each')
  t.equal(masters.reduce((sum, master) => sum + master.slots.reduce((n, [from, to]) => n + to - from + 1, 0), 0), 16384, 'every slot served')
  t.equal(cluster.seeds.split(',').length, 3)

  const ids = await cluster.spreadIds(3)
  const owners = await Promise.all(ids.map((id) => cluster.masterFor(`rtaa:audio:{_:${id}}`)))
  t.same(new Set(owners.map((owner) => owner.port)), new Set(masters.map((master) => master.port)), `${ids.join(', ')}: one on each master`)
  for (const [i, id] of ids.entries()) {
    t.equal((await cluster.masterFor(`rtaa:playback:{_:${id}}`)).slot, owners[i].slot, 'a call\'s names share its slot')
  }
})

// ---------------------------------------------------------------------------------------------------------------
// The gateway on the cluster: REDIS_CLUSTER_NODES, sharded pub/sub or Streams.

/** Exotel calls from exotelStrings name an account no credential vouches for: their tenant is spelled with `~`. */
const TENANT = '~ACxxxxxxxxxxxxxxxxxxxxxxxx'
const tagOf = (id: string): string => `{${TENANT}:${id}}`

async function clusterGateway (t: Test, transport: 'pubsub' | 'streams', env: Record<string, string> = {}): Promise<Gateway> {
  // On a cluster REDIS_URL gives only credentials and TLS, none here; its host is not used.
  const gateway = await startGateway(t, `redis://127.0.0.1:${cluster.nodes[0].port}`, { REDIS_CLUSTER_NODES: cluster.seeds, REDIS_TRANSPORT: transport, ...env })
  await waitReady(gateway)
  return gateway
}

/** A whole Exotel call sent at once: start, 100 ms frames of 8 kHz audio, stop. */
async function exotelCall (gateway: Gateway, id: string, frames: Buffer[]): Promise<Closed> {
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  client.send(exotelStrings.start(id))
  frames.forEach((pcm, i) => client.send(exotelStrings.media(`MZ${id}`, i + 2, i + 1, i * 100, pcm)))
  client.send(exotelStrings.stop(id, `MZ${id}`, frames.length + 2))
  return await client.closed
}

/** 12 frames of 100 ms, their audio the call's own. */
const framesOf = (id: string): Buffer[] => {
  const seed = [...id].reduce((sum, char) => sum * 31 + char.charCodeAt(0), 0) % 10_000
  return Array.from({ length: 12 }, (_, i) => pcmFrame(1600, seed * 100 + i))
}

type Event = Record<string, unknown> & { type: string, interaction_id: string }

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** Waits for a call's call.start: SSUBSCRIBEd to the calls channel now, or read from the calls stream. */
async function watchCallStarts (t: Test, gateway: Gateway, transport: 'pubsub' | 'streams'): Promise<(id: string) => Promise<Event>> {
  const calls = `${gateway.prefix}calls`
  const isStart = (json: string, id: string): boolean => json.includes('"type":"call.start"') && (JSON.parse(json) as Event).interaction_id === id
  if (transport === 'pubsub') {
    const subscriber = await ShardedSubscriber.start(t, cluster, [calls])
    return async (id) => JSON.parse((await subscriber.published.waitFor(({ message }) => isStart(message.toString(), id), `call.start of ${id}`)).message.toString()) as Event
  }
  const reader = new StreamReader(t, cluster)
  return async (id) => JSON.parse((await reader.waitFor(calls, ({ fields }) => isStart(fields.event.toString(), id), `call.start of ${id}`)).fields.event.toString()) as Event
}

t.test('the gateway is ready against a healthy cluster, in either transport', async (t) => {
  for (const transport of ['pubsub', 'streams'] as const) {
    const gateway = await clusterGateway(t, transport)
    const response = await fetch(`${gateway.url}/ready`)
    t.equal(response.status, 200, transport)
    t.same(await response.json(), { status: 'ready' })
  }
})

t.test('pub/sub on the cluster: calls on every master arrive byte for byte, by SPUBLISH', async (t) => {
  const gateway = await clusterGateway(t, 'pubsub')
  const ids = await cluster.spreadIds(3, { tenant: TENANT, prefix: 'CAsharded' })
  const calls = `${gateway.prefix}calls`
  const audio = ids.map((id) => `${gateway.prefix}audio:${tagOf(id)}`)
  t.equal(new Set(await Promise.all(audio.map(async (channel) => (await cluster.masterFor(channel)).port))).size, 3, 'the audio channels are on three masters')
  const subscriber = await ShardedSubscriber.start(t, cluster, [calls, ...audio])
  const events = (id: string): Event[] => subscriber.on(calls).map((message) => JSON.parse(message.toString()) as Event).filter((event) => event.interaction_id === id)

  const closed = await Promise.all(ids.map((id) => exotelCall(gateway, id, framesOf(id))))
  t.same(closed.map(({ code }) => code), [1000, 1000, 1000])
  for (const [i, id] of ids.entries()) {
    await subscriber.published.waitFor(({ channel, message }) => channel === calls && message.includes('"call.stop"') && message.includes(`"${id}"`), `call.stop of ${id}`)
    // Each shard delivers on a connection of its own: no order between the calls channel and an audio channel.
    await subscriber.published.waitFor(({ channel, message }) => channel === audio[i] && decodeAudioFrame(message).header.seq === 12, `frame 12 of ${id}`)
    t.match(events(id), [{
      type: 'call.start',
      transport: 'pubsub',
      sharded: true,
      audio_channel: audio[i],
      audio_stream: null,
      playback_channel: `${gateway.prefix}playback:${tagOf(id)}`
    }, { type: 'call.stop', reason: 'callended', frames: 12, frames_lost: 0 }], `${id}: call.start and call.stop, sharded`)
    const frames = subscriber.on(audio[i]).map(decodeAudioFrame)
    t.same(frames.map(({ header }) => header.seq), Array.from({ length: 12 }, (_, n) => n + 1), `${id}: every frame, in order`)
    t.ok(frames.every(({ header, pcm }, n) => header.interaction_id === id && pcm.equals(framesOf(id)[n])), `${id}: byte for byte`)
  }
})

t.test('Streams on the cluster: calls on every master are in their audio streams byte for byte, events in the calls stream', async (t) => {
  const gateway = await clusterGateway(t, 'streams')
  const reader = new StreamReader(t, cluster)
  const ids = await cluster.spreadIds(3, { tenant: TENANT, prefix: 'CAstreamed' })
  const calls = `${gateway.prefix}calls`

  const closed = await Promise.all(ids.map((id) => exotelCall(gateway, id, framesOf(id))))
  t.same(closed.map(({ code }) => code), [1000, 1000, 1000])
  for (const id of ids) {
    await reader.waitFor(calls, ({ fields }) => fields.type.toString() === 'call.stop' && fields.event.toString().includes(`"${id}"`), `call.stop of ${id}`)
    const events = (await reader.range(calls)).map(({ fields }) => ({ ...JSON.parse(fields.event.toString()) as Event, stream_type: fields.type.toString() }))
      .filter((event) => event.interaction_id === id)
    t.match(events, [{
      stream_type: 'call.start',
      type: 'call.start',
      transport: 'streams',
      sharded: true,
      audio_channel: null,
      audio_stream: new RegExp(`^${escape(`${gateway.prefix}audio:${tagOf(id)}`)}:\\d+$`),
      playback_channel: `${gateway.prefix}playback:${tagOf(id)}`
    }, { stream_type: 'call.stop', type: 'call.stop', reason: 'callended', frames: 12, frames_lost: 0 }], `${id}: call.start and call.stop in the calls stream, the type field as the event's`)

    // The stream's name ends with the epoch of this stream of the call; its hash tag keeps it on the call's shard.
    const key = (events[0] as Event).audio_stream as string
    t.equal((await cluster.masterFor(key)).slot, (await cluster.masterFor(tagOf(id))).slot, `${key}: the call's slot`)
    const entries = await reader.range(key)
    t.equal(entries.length, 13, `${id}: 12 frames and the end`)
    entries.slice(0, 12).forEach(({ fields }, n) => {
      t.same(Object.fromEntries(Object.entries(fields).filter(([name]) => name !== 'pcm').map(([name, value]) => [name, value.toString()])),
        { seq: String(n + 1), vendor_seq: String(n + 2), timestamp_ms: String(n * 100), sample_rate: '8000' }, `${id} frame ${n + 1}: its fields`)
      t.ok(fields.pcm.equals(framesOf(id)[n]), `${id} frame ${n + 1}: byte for byte`)
    })
    t.same(Object.fromEntries(Object.entries(entries[12].fields).map(([name, value]) => [name, value.toString()])),
      { end: 'callended', frames: '12', frames_lost: '0' }, `${id}: the stream ends saying so`)
  }
})

for (const transport of ['pubsub', 'streams'] as const) {
  t.test(`${transport}: a worker's SPUBLISH on playback_channel reaches calls on every master`, async (t) => {
    const gateway = await clusterGateway(t, transport)
    const ids = await cluster.spreadIds(3, { tenant: TENANT, prefix: `CAplay${transport}` })
    const worker = new Cluster(cluster.startupNodes)
    t.teardown(() => worker.disconnect())
    const callStart = await watchCallStarts(t, gateway, transport)
    for (const [i, id] of ids.entries()) {
      const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
      t.teardown(() => client.ws.terminate())
      client.send(exotelStrings.start(id))
      const start = await callStart(id)
      t.equal(start.playback_channel, `${gateway.prefix}playback:${tagOf(id)}`)
      // The contract has the gateway subscribed before call.start is out, but the first call on a shard is not yet
      // (see 'the playback subscription is in place before call.start' below): wait for it here.
      await cluster.waitForShardSubscribers(start.playback_channel as string)
      const pcm = pcmFrame(3200, i)
      const header = Buffer.from(JSON.stringify({ sample_rate: 8000, encoding: 'pcm_s16le', channels: 1 }))
      const length = Buffer.alloc(4)
      length.writeUInt32BE(header.length)
      t.equal(await worker.spublish(start.playback_channel as string, Buffer.concat([length, header, pcm])), 1, `${id}: one subscriber, the gateway`)
      const media = JSON.parse(await client.received.waitFor((message) => message.includes('"media"'), `playback media of ${id}`)) as { stream_sid: string, media: { payload: string } }
      t.equal(media.stream_sid, `MZ${id}`)
      t.ok(Buffer.from(media.media.payload, 'base64').equals(pcm), `${id}: the caller hears the worker's audio, byte for byte`)
      client.send(exotelStrings.stop(id, `MZ${id}`, 3))
      t.equal((await client.closed).code, 1000)
    }
  })
}

t.test('the playback subscription is in place before call.start, for the first call on a shard too', async (t) => {
  // MONITOR on one server shows the order the two commands took there: the call's playback channel is on the master
  // of the calls channel. A first call elsewhere opens the gateway's publishing connection to that master (its
  // call.start and call.stop go there), and leaves its subscriber with no connection to it.
  const gateway = await clusterGateway(t, 'pubsub')
  const calls = `${gateway.prefix}calls`
  const { port } = await cluster.masterFor(calls)
  const idOn = async (prefix: string, wanted: (master: number) => boolean): Promise<string> => {
    for (let n = 0; ; n++) if (wanted((await cluster.masterFor(tagOf(`${prefix}${n}`))).port)) return `${prefix}${n}`
  }
  const elsewhere = await idOn('CAwarm', (master) => master !== port)
  t.equal((await exotelCall(gateway, elsewhere, [pcmFrame(320, 1)])).code, 1000)
  // MONITOR takes a connection of its own, a copy of this client's.
  const admin = new Redis({ host: '127.0.0.1', port, lazyConnect: true })
  t.teardown(() => admin.disconnect())
  const monitor = await admin.monitor()
  t.teardown(() => monitor.disconnect())
  const commands = new Collected<string[]>()
  monitor.on('monitor', (_time: string, args: string[]) => commands.push(args))

  /** Starts and stops a call, and says in which order its SSUBSCRIBE and its call.start reached the server. */
  const orderOf = async (id: string): Promise<string[]> => {
    const playback = `${gateway.prefix}playback:${tagOf(id)}`
    const isStart = (args: string[]): boolean => args[0].toLowerCase() === 'spublish' && args[1] === calls && args[2].includes('"call.start"') && args[2].includes(`"${id}"`)
    const isSubscribe = (args: string[]): boolean => args[0].toLowerCase() === 'ssubscribe' && args.includes(playback)
    const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
    t.teardown(() => client.ws.terminate())
    client.send(exotelStrings.start(id))
    await Promise.all([commands.waitFor(isStart, `SPUBLISH of call.start of ${id}`), commands.waitFor(isSubscribe, `SSUBSCRIBE of ${playback}`)])
    client.send(exotelStrings.stop(id, `MZ${id}`, 2))
    t.equal((await client.closed).code, 1000)
    return commands.items.filter((args) => isStart(args) || isSubscribe(args)).map((args) => args[0].toUpperCase())
  }
  const first = await orderOf(await idOn('CAfirst', (master) => master === port))
  // Its shard's subscriber connects on its first SSUBSCRIBE: the call goes live only once that is acknowledged.
  t.same(first, ['SSUBSCRIBE', 'SPUBLISH'], `the first call on ${port}: ${first.join(', ')}`)
  const second = await orderOf(await idOn('CAsecond', (master) => master === port))
  t.same(second, ['SSUBSCRIBE', 'SPUBLISH'], `the second call on ${port}, its subscriber connected: ${second.join(', ')}`)
})

// The tests below kill masters: each leaves the cluster one replica short.

t.test('SIGKILL of a key\'s master: its replica takes over and the key is served again', async (t) => {
  const client = new Cluster(cluster.startupNodes)
  t.teardown(() => client.disconnect())
  const key = 'rtaa:call:{_:CAfailover}'
  t.equal(await client.set(key, 'claimed'), 'OK')
  const before = await cluster.masterFor(key)
  const [replica] = await cluster.replicasOf(before.port)
  // The write must be on the replica before its master dies: WAIT on the connection that wrote it.
  const writer = client.nodes('master').find((node) => node.options.port === before.port)
  t.equal(await writer?.wait(1, 5_000), 1, 'replicated')
  t.equal(await client.get(key), 'claimed')

  await cluster.kill(before.port)
  const after = await cluster.waitForFailover(key, before.port)
  t.equal(after.port, replica, 'the replica is the new master')
  t.equal(after.slot, before.slot)
  t.equal(await client.get(key), 'claimed', 'the key survived, served by the new master')
  t.equal(await client.set(key, 'again'), 'OK', 'and writable')
  t.equal((await cluster.masterFor(key)).port, replica)
})

t.test('Streams: SIGKILL of the master holding a live call; its replica takes over, the call goes on, every frame is in order or counted lost', async (t) => {
  const gateway = await clusterGateway(t, 'streams')
  const reader = new StreamReader(t, cluster)
  const calls = `${gateway.prefix}calls`
  // A call on a master with a replica to take over; not the master of the calls stream, whose events go on meanwhile.
  const callsMaster = (await cluster.masterFor(calls)).port
  let id = ''
  let master = 0
  let replica: number | undefined
  for (let n = 0; replica === undefined; n++) {
    id = `CAfailover${n}`
    master = (await cluster.masterFor(tagOf(id))).port
    if (master !== callsMaster) replica = (await cluster.replicasOf(master))[0]
  }

  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  t.teardown(() => client.ws.terminate())
  client.send(exotelStrings.start(id))
  const startEntry = await reader.waitFor(calls, ({ fields }) => fields.type.toString() === 'call.start' && fields.event.toString().includes(`"${id}"`), `call.start of ${id}`)
  const key = (JSON.parse(startEntry.fields.event.toString()) as Event).audio_stream as string
  t.equal((await cluster.masterFor(key)).port, master, `${key} is on the master about to die`)
  // Real time: 20 ms of 8 kHz audio every 20 ms.
  let sent = 0
  const pacer = setInterval(() => {
    sent++
    client.send(exotelStrings.media(`MZ${id}`, sent + 1, sent, (sent - 1) * 20, pcmFrame(320, sent)))
  }, 20)
  t.teardown(() => clearInterval(pacer))
  await reader.waitFor(key, ({ fields }) => Number(fields.seq) >= 10, 'frame 10')

  // The replica is held until the gateway has seen the cluster down, so the outage lasts longer than its 1 s check.
  cluster.pause(replica)
  await cluster.kill(master)
  const killedAt = sent
  await gateway.logs.waitFor((line) => String(line.msg).startsWith('redis cluster state fail'), 'redis cluster state fail', 15_000)
  const down = await fetch(`${gateway.url}/ready`)
  t.equal(down.status, 503, 'not ready while a slot has no master')
  const { reasons } = await down.json() as { reasons: string[] }
  t.ok(reasons.includes('redis_cluster_down'), `reasons: ${reasons.join(', ')}`)

  cluster.resume(replica)
  const after = await cluster.waitForFailover(tagOf(id), master)
  t.equal(after.port, replica, 'the replica is the master now')
  await gateway.logs.waitFor((line) => line.msg === 'redis cluster state ok', 'redis cluster state ok', 15_000)
  // A publish held up by the failover may have the gateway say it is stalled too: that ends with 'redis answering again'.
  const count = (msg: string): number => gateway.logs.items.filter((line) => String(line.msg).startsWith(msg)).length
  await gateway.logs.waitFor(() => count('redis answering again') === count('redis stalled'), 'the end of any stall', 15_000)
  const up = await fetch(`${gateway.url}/ready`)
  t.equal(up.status, 200, 'ready again')
  t.same(await up.json(), { status: 'ready' })
  const resumedAt = sent
  await reader.waitFor(key, ({ fields }) => Number(fields.seq) > resumedAt + 10, 'frames sent after the failover', 15_000)

  clearInterval(pacer)
  client.send(exotelStrings.stop(id, `MZ${id}`, sent + 2))
  t.same(await client.closed, { code: 1000, reason: 'stream stopped' }, 'the caller never noticed')
  const stopEntry = await reader.waitFor(calls, ({ fields }) => fields.type.toString() === 'call.stop' && fields.event.toString().includes(`"${id}"`), `call.stop of ${id}`)
  const stop = JSON.parse(stopEntry.fields.event.toString()) as Event & { frames: number, frames_lost: number }
  t.equal(stop.frames, sent, 'call.stop counts every frame sent')

  // Frames, then the end entry (a call.stop sent again would add a second one: the first counts).
  const entries = await reader.range(key)
  const end = entries.findIndex(({ fields }) => fields.end !== undefined)
  const frames = entries.slice(0, end)
  t.ok(end > 0 && entries.slice(end).every(({ fields }) => fields.seq === undefined), 'no frame after the end entry')
  const seqs = frames.map(({ fields }) => Number(fields.seq))
  t.ok(seqs.every((seq, i) => i === 0 || seq > seqs[i - 1]), 'the frames present are in order, none twice')
  t.ok(frames.every(({ fields }) => fields.pcm.equals(pcmFrame(320, Number(fields.seq)))), 'each with its own audio')
  t.equal(seqs.length + stop.frames_lost, stop.frames, `frames present (${seqs.length}) + frames_lost (${stop.frames_lost}) = frames (${stop.frames})`)
  t.ok(seqs.some((seq) => seq <= killedAt) && seqs.some((seq) => seq > resumedAt), 'frames from before the kill and after the failover')
  t.same(Object.fromEntries(Object.entries(entries[end]?.fields ?? {}).map(([name, value]) => [name, value.toString()])),
    { end: 'callended', frames: String(stop.frames), frames_lost: String(stop.frames_lost) }, 'the stream ends as call.stop says')
  const dropped = (await scrape(gateway.url)).filter((sample) => sample.name === 'rtaa_frames_dropped_total' && sample.value > 0)
  t.comment(`frames dropped by reason: ${JSON.stringify(dropped.map(({ labels, value }) => ({ reason: labels.reason, value })))}`)
  t.comment(`gateway warnings: ${JSON.stringify(gateway.logs.items.filter((line) => line.level >= 40).map((line) => line.msg))}`)
  t.comment(`first loss: ${(gateway.logs.items.find((line) => line.msg === 'audio frame not published to redis')?.err as { message?: string } | undefined)?.message}`)
  t.comment(`killed master ${master}, its replica ${replica}; sent ${sent} frames; killed at ${killedAt}, failed over by ${resumedAt}; lost ${stop.frames_lost}: ${JSON.stringify(lostRanges(seqs, stop.frames))}`)
})

/** The seqs missing from `seqs`, as [from, to] ranges. */
function lostRanges (seqs: number[], frames: number): Array<[number, number]> {
  const present = new Set(seqs)
  const ranges: Array<[number, number]> = []
  for (let seq = 1; seq <= frames; seq++) {
    if (present.has(seq)) continue
    const last = ranges.at(-1)
    if (last !== undefined && last[1] === seq - 1) last[1] = seq
    else ranges.push([seq, seq])
  }
  return ranges
}
