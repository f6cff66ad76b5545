import { performance } from 'node:perf_hooks'
import { Writable } from 'node:stream'
import pino from 'pino'
import t, { type Test } from 'tap'
import { RedisBus } from '../src/bus/redis-bus.js'
import { pubSubTransport } from '../src/bus/transports.js'
import type { CallEvent } from '../src/bus/call-events.js'
import { createMetrics } from '../src/metrics.js'
import { ProviderClient, exotelStrings, pcmFrame, refusedUpgrade } from './helpers/exotel.js'
import { scrape, total } from './helpers/metrics.js'
import { TestRedis, freePort } from './helpers/redis-server.js'
import { runServer, startReplica } from './helpers/server-process.js'
import { Subscriber } from './helpers/subscriber.js'
import { TcpProxy } from './helpers/tcp-proxy.js'
import { Collected } from './helpers/waiter.js'

/** Each test pauses, stops or cuts its own Redis, so they never disturb each other. */
async function ownRedis (t: Test): Promise<TestRedis> {
  const redis = await TestRedis.start()
  t.teardown(() => {
    redis.resume()
    return redis.stop()
  })
  return redis
}

let prefixes = 0
const uniquePrefix = (): string => `faults${process.pid}-${++prefixes}:`

/** A gateway process on a Redis of the test's own, a subscriber to all it publishes, and one Exotel call started. */
async function startedCall (t: Test, callSid: string, env: Record<string, string> = {}) {
  const redis = await ownRedis(t)
  const prefix = uniquePrefix()
  const gateway = await startReplica(t, { REDIS_URL: redis.url, REDIS_PREFIX: prefix, LOG_LEVEL: 'info', ...env })
  const subscriber = await Subscriber.start(t, redis.url, prefix)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  client.send(exotelStrings.start(callSid))
  await subscriber.waitForEvent('call.start', callSid)
  /** Sends `count` frames of 100 ms, numbered from 1, and returns their PCM. */
  const sendFrames = (count: number): Buffer[] => Array.from({ length: count }, (_, i) => {
    const pcm = pcmFrame(1600, i)
    client.send(exotelStrings.media(`MZ${callSid}`, i + 2, i + 1, i * 100, pcm))
    return pcm
  })
  const stop = (): void => client.send(exotelStrings.stop(callSid, `MZ${callSid}`, 100_000))
  return { redis, gateway, subscriber, client, sendFrames, stop }
}

async function timed<T> (work: Promise<T>): Promise<{ value: T, ms: number }> {
  const started = performance.now()
  const value = await work
  return { value, ms: performance.now() - started }
}

t.test('a dtmf flood while Redis is paused stays within the bound, is counted, and leaves the call beside it whole', async (t) => {
  const redis = await ownRedis(t)
  const prefix = uniquePrefix()
  const gateway = await startReplica(t, {
    REDIS_URL: redis.url,
    REDIS_PREFIX: prefix,
    LOG_LEVEL: 'info',
    REDIS_BUFFER_MAX_BYTES: String(1024 * 1024),
    // The inbound rate limit would close the flood first; this test is about the buffer behind it.
    INBOUND_MAX_MESSAGES_PER_S: '1000000'
  })
  const subscriber = await Subscriber.start(t, redis.url, prefix)
  const good = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  const flood = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  good.send(exotelStrings.start('CAgood'))
  flood.send(exotelStrings.start('CAflood'))
  await subscriber.waitForEvent('call.start', 'CAflood')
  await subscriber.waitForEvent('call.start', 'CAgood')

  redis.pause()
  const sent: Buffer[] = []
  for (let i = 0; i < 20; i++) {
    sent.push(pcmFrame(1600, i))
    good.send(exotelStrings.media('MZCAgood', i + 2, i + 1, i * 100, sent[i]))
  }
  const dtmf = JSON.stringify(exotelStrings.dtmf('MZCAflood', 2, '5'))
  const probes: number[] = []
  for (let round = 0; round < 10; round++) {
    for (let i = 0; i < 3000; i++) flood.send(dtmf)
    probes.push((await timed(fetch(`${gateway.url}/health`))).ms)
  }
  const during = await scrape(gateway.url)
  t.ok(Math.max(...probes) < 1000, `/health answers within a second throughout the flood (slowest ${Math.round(Math.max(...probes))} ms)`)
  t.ok(total(during, 'rtaa_redis_buffer_bytes') <= 1024 * 1024, `the buffer stays within REDIS_BUFFER_MAX_BYTES: ${total(during, 'rtaa_redis_buffer_bytes')}`)
  t.ok(total(during, 'rtaa_events_dropped_total', { type: 'call.dtmf', reason: 'call_event_limit' }) > 20_000,
    'the flood\'s dtmf events past REDIS_BUFFER_MAX_EVENTS_PER_CALL are dropped and counted')

  redis.resume()
  good.send(exotelStrings.stop('CAgood', 'MZCAgood', 30))
  flood.send(exotelStrings.stop('CAflood', 'MZCAflood', 30000))
  t.match(await subscriber.waitForEvent('call.stop', 'CAgood'), { frames: 20, frames_lost: 0 })
  t.same(subscriber.frames('CAgood').map(({ pcm }) => pcm), sent, 'the call beside the flood arrives byte-exact, in order')
  await subscriber.waitForEvent('call.stop', 'CAflood')
  const dtmfs = subscriber.events('CAflood').filter((event) => event.type === 'call.dtmf')
  t.equal(dtmfs.length, 100, 'the flood kept exactly its per-call bound of dtmf events')
})

t.test('the bound drops audio first, then dtmf and mark events, keeps call events while it can, and flushes the rest in order', async (t) => {
  const redis = await ownRedis(t)
  const prefix = uniquePrefix()
  const metrics = createMetrics({ tenantLabel: false })
  const logs = new Collected<{ msg: string }>()
  const log = pino({ level: 'info' }, new Writable({
    write (chunk: Buffer, _encoding, done) {
      logs.push(JSON.parse(chunk.toString()) as { msg: string })
      done()
    }
  }))
  // Cut off, not paused, so that everything waits in the buffer rather than in flight, where nothing can be dropped.
  const proxy = await TcpProxy.start(redis.port)
  t.teardown(() => proxy.close())
  const bus = new RedisBus({ target: { url: proxy.url, clusterNodes: null }, transport: pubSubTransport(prefix, false), prefix, log, metrics, bufferMaxBytes: 64 * 1024, maxEventsPerCall: 1_000_000, stallTimeoutMs: 60_000 })
  t.teardown(() => bus.close())
  const subscriber = await Subscriber.start(t, redis.url, prefix)
  await logs.waitFor((line) => line.msg === 'redis connected')
  const fates = { published: 0, dropped: 0 }
  const outcome = { published: () => fates.published++, failed: () => fates.dropped++ }
  const identity = (id: string) => ({ interaction_id: id, tenant_id: null, tenant_verified: false, vendor: 'exotel', stream_id: null, ts: 0 })
  const settled: Array<Promise<string>> = []
  const publish = (event: CallEvent): void => {
    const call = { tenantId: event.tenant_id, tenantVerified: event.tenant_verified, interactionId: event.interaction_id }
    settled.push(bus.publishEvent(call, event).then(() => 'published', () => 'dropped'))
  }

  proxy.cut()
  await logs.waitFor((line) => line.msg === 'redis connection lost, reconnecting')
  for (let i = 0; i < 20; i++) {
    bus.publishAudio({ tenantId: null, tenantVerified: false, interactionId: 'CA1' },
      { interaction_id: 'CA1', tenant_id: null, seq: i + 1, vendor_seq: null, timestamp_ms: i * 20, sample_rate: 8000, encoding: 'pcm_s16le', channels: 1 },
      pcmFrame(320, i), outcome)
  }
  for (let call = 0; call < 40; call++) publish({ type: 'call.start', ...identity(`CA${call}`), sample_rate: 8000, encoding: 'pcm_s16le', channels: 1, from: null, to: null, custom_parameters: {}, transport: 'pubsub', sharded: false, audio_channel: 'a', audio_stream: null, playback_channel: 'p', tracks: ['inbound'], audio_by_track: { inbound: 'a' }, contract_version: 2 })
  for (let i = 0; i < 400; i++) publish({ type: 'call.dtmf', ...identity(`CA${i % 40}`), digit: String(i % 10), duration_ms: null })
  t.equal(fates.published, 0, 'nothing is published while Redis is away')
  t.equal(fates.dropped, 20, 'the audio went first')
  await metrics.registry.metrics()
  const buffered = (await metrics.redisBufferBytes.get()).values[0].value
  t.ok(buffered <= 64 * 1024, `what waits fits the bound: ${buffered}`)
  const dropped = (await metrics.eventsDropped.get()).values
  t.ok(dropped.some(({ labels, value }) => labels.type === 'call.dtmf' && labels.reason === 'redis_buffer_full' && value > 0), 'then the oldest dtmf events, counted')
  t.notOk(dropped.some(({ labels }) => labels.type === 'call.start'), 'call.start events are kept while dtmf events are left to drop')

  proxy.restore()
  const outcomes = await Promise.all(settled)
  const kept = outcomes.slice(40).lastIndexOf('dropped')
  t.ok(outcomes.slice(40 + kept + 1).every((fate) => fate === 'published'), 'the newest dtmf events survive')
  // A PUBLISH is answered before its subscribers are sent it: one more event on the same connection marks the end.
  await bus.publishEvent({ tenantId: null, tenantVerified: false, interactionId: 'CAlast' }, { type: 'call.dtmf', ...identity('CAlast'), digit: '#', duration_ms: null })
  await subscriber.waitForEvent('call.dtmf', 'CAlast')
  const events = subscriber.events().filter(({ interaction_id: id }) => id !== 'CAlast')
  t.equal(events.filter(({ type }) => type === 'call.start').length, 40, 'every call.start arrives')
  const digits = events.filter(({ type }) => type === 'call.dtmf').map((event) => (event as { digit: string }).digit)
  t.same(digits, outcomes.slice(40).flatMap((fate, i) => (fate === 'published' ? [String(i % 10)] : [])), 'in publish order')
})

t.test('a stalled Redis marks the instance unready, shows in the buffer gauge, and is logged', async (t) => {
  const { redis, gateway, subscriber, sendFrames, stop } = await startedCall(t, 'CAstall', { REDIS_STALL_TIMEOUT_MS: '500' })
  redis.pause()
  const sent = sendFrames(10)
  const warning = await gateway.lines.waitFor((line) => line.msg === 'redis stalled: a publish has waited past REDIS_STALL_TIMEOUT_MS; not ready')
  t.equal(warning.level, 40, 'at warn')
  const ready = await fetch(`${gateway.url}/ready`)
  t.same({ status: ready.status, body: await ready.json() }, { status: 503, body: { status: 'not_ready', reasons: ['redis_stalled'] } })
  const samples = await scrape(gateway.url)
  t.ok(total(samples, 'rtaa_redis_buffer_bytes') >= 10 * 1600, 'the unacknowledged frames count in the buffer gauge')
  t.equal(total(samples, 'rtaa_redis_stalled'), 1)

  redis.resume()
  await gateway.lines.waitFor((line) => line.msg === 'redis answering again')
  t.equal((await fetch(`${gateway.url}/ready`)).status, 200, 'ready again')
  stop()
  t.match(await subscriber.waitForEvent('call.stop', 'CAstall'), { frames: 10, frames_lost: 0 })
  t.same(subscriber.frames('CAstall').map(({ pcm }) => pcm), sent, 'every frame, in order')
})

t.test('a stall longer than the buffer drops the oldest waiting audio, never the call.stop behind it', async (t) => {
  // 40 s of audio goes in at once: the inbound audio limit must not close the call first.
  const { redis, subscriber, client, sendFrames, stop: stopCall } = await startedCall(t, 'CAlongstall', {
    REDIS_BUFFER_MAX_BYTES: String(256 * 1024), INBOUND_MAX_AUDIO_SPEED: '1000'
  })
  redis.pause()
  // 400 frames of 100 ms: far more than 256 KiB, most of it written to the stalled connection, where it stays.
  sendFrames(400)
  stopCall()
  t.equal((await client.closed).code, 1000)
  redis.resume()
  const stop = await subscriber.waitForEvent('call.stop', 'CAlongstall') as { frames: number, frames_lost: number }
  const frames = subscriber.frames('CAlongstall')
  t.equal(stop.frames, 400)
  t.ok(stop.frames_lost > 0, `frames were lost (${stop.frames_lost}), and the call.stop that counts them arrived`)
  t.equal(frames.length, 400 - stop.frames_lost, 'what call.stop says is lost is exactly what never arrived')
  const seqs = frames.map(({ header }) => header.seq)
  t.same(seqs, [...seqs].sort((a, b) => a - b), 'what arrived, in order')
})

t.test('a Redis that cannot be reached at start is a warning at once, with the password redacted, and calls are refused', async (t) => {
  const port = await freePort()
  const gatewayPort = await freePort()
  const server = runServer(t.testdir({}), {
    HOST: '127.0.0.1', PORT: String(gatewayPort), REDIS_URL: `redis://:hunter2-secret@127.0.0.1:${port}/0`, LOG_LEVEL: 'debug'
  })
  t.teardown(() => { server.child.kill('SIGKILL') })
  const warning = await server.lines.waitFor((line) => String(line.msg).startsWith('redis unreachable'), 'the warning', 30_000)
  t.equal(warning.level, 40)
  t.equal(warning.redis, `redis://:[redacted]@127.0.0.1:${port}/0`)
  t.equal(warning.code, 'ECONNREFUSED')
  await server.lines.waitFor((line) => String(line.msg).startsWith('Server listening'))
  const refused = await refusedUpgrade(`ws://127.0.0.1:${gatewayPort}/v1/ingest?sample-rate=8000`)
  t.match(refused, { status: 503, body: /cannot reach Redis/ }, 'a test call fails at once rather than streaming into the buffer')
  // ioredis retries every 50-2000 ms, each retry a debug line; the warning is not repeated for each.
  await server.lines.waitFor((line) => line.msg === 'redis connection error' && line.level === 20 &&
    server.lines.items.filter(({ msg }) => msg === 'redis connection error').length >= 3, 'three retries')
  t.equal(server.lines.items.filter((line) => String(line.msg).startsWith('redis unreachable')).length, 1, 'repeated at a bounded rate, not per retry')
  t.notMatch(JSON.stringify(server.lines.items) + server.stderr(), /hunter2/, 'the password is never logged')
})

t.test('REDIS_CLUSTER_NODES naming a Redis without cluster support: the warning names the seeds and the cause, and calls are refused', async (t) => {
  const redis = await ownRedis(t)
  const gatewayPort = await freePort()
  const server = runServer(t.testdir({}), {
    HOST: '127.0.0.1', PORT: String(gatewayPort), REDIS_CLUSTER_NODES: `127.0.0.1:${redis.port}`, LOG_LEVEL: 'info'
  })
  t.teardown(() => { server.child.kill('SIGKILL') })
  const warning = await server.lines.waitFor((line) => String(line.msg).startsWith('redis unreachable'), 'the warning', 30_000)
  t.match(warning, {
    level: 40,
    msg: 'redis unreachable: check REDIS_CLUSTER_NODES; nothing is published until it connects',
    redis: `cluster 127.0.0.1:${redis.port}`,
    error: /cluster support disabled/
  })
  await server.lines.waitFor((line) => String(line.msg).startsWith('Server listening'))
  t.match(await refusedUpgrade(`ws://127.0.0.1:${gatewayPort}/v1/ingest?sample-rate=8000`), { status: 503, body: /cannot reach Redis/ })
})

t.test('SIGTERM while Redis is paused: the drain keeps flushing, and everything arrives once Redis is back', async (t) => {
  const { redis, gateway, subscriber, client, sendFrames, stop } = await startedCall(t, 'CAdrain', { DRAIN_TIMEOUT_MS: '30000' })
  redis.pause()
  const sent = sendFrames(10)
  stop()
  await client.closed
  gateway.child.kill('SIGTERM')
  await gateway.lines.waitFor((line) => line.msg === 'closing: waiting for redis to take what is buffered')
  redis.resume()
  t.equal(await gateway.exited, 0, 'the process exits cleanly once all is delivered')
  t.match(await subscriber.waitForEvent('call.stop', 'CAdrain'), { frames: 10, frames_lost: 0 })
  t.same(subscriber.frames('CAdrain').map(({ pcm }) => pcm), sent, 'every frame, in order')
  t.notOk(gateway.lines.items.some((line) => line.msg === 'dropped at shutdown: never reached redis'), 'nothing dropped')
})

t.test('SIGTERM while Redis never comes back: what is dropped at the end is logged call by call', async (t) => {
  const { redis, gateway, client, sendFrames, stop } = await startedCall(t, 'CAlost', { DRAIN_TIMEOUT_MS: '1000' })
  redis.pause()
  sendFrames(5)
  stop()
  await client.closed
  gateway.child.kill('SIGTERM')
  const report = await gateway.lines.waitFor((line) => line.msg === 'dropped at shutdown: never reached redis', 'the drop report', 15_000)
  t.match(report, { level: 40, interaction_id: 'CAlost', frames_dropped: 5, events_dropped: ['call.stop'] })
  t.equal(await gateway.exited, 0)
})
