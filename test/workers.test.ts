/**
 * WORKERS > 1: the real server as operators run it (src/server.ts in its own process), a primary and two workers
 * sharing one port, against a real redis-server.
 */
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { Gauge, Registry } from 'prom-client'
import t, { type Test } from 'tap'
import type { CallStartEvent, CallStopEvent } from '../src/bus/call-events.js'
import type { DashboardView } from '../src/dashboard/dashboard-view.js'
import { aggregateGroup, createMetrics, keepCounted } from '../src/metrics.js'
import { listenIn } from './helpers/dashboard.js'
import { ProviderClient, exotelStrings, pcmFrame, refusedUpgrade } from './helpers/exotel.js'
import { scrape, total, type Sample } from './helpers/metrics.js'
import { TestRedis, freePort } from './helpers/redis-server.js'
import { runServer, type ServerProcess } from './helpers/server-process.js'
import { Subscriber } from './helpers/subscriber.js'
import { Collected } from './helpers/waiter.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

interface Group extends ServerProcess {
  wsUrl: string
  url: string
  /** The workers' process ids, as the primary logged them when they listened. */
  workerPids: number[]
}

/** Lines of the primary (role: primary) and of the workers (worker: id), told apart by the fields they carry. */
const isPrimary = (line: Record<string, unknown>): boolean => line.role === 'primary'

/** The server with WORKERS=2, once the primary says every worker listens and each process has reached Redis. */
async function startGroup (t: Test, env: Record<string, string>): Promise<Group> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'rtaa-workers-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const server = runServer(dir, {
    WORKERS: '2', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'debug', DRAIN_TIMEOUT_MS: '0', EVENT_LOOP_DELAY_LIMIT_MS: '60000', REDIS_URL: redis.url, ...env
  })
  t.teardown(() => { server.child.kill('SIGKILL') })
  const died = server.exited.then((code) => { throw new Error(`the server exited with ${code}: ${server.stderr()}`) })
  died.catch(() => {})
  await Promise.race([died, server.lines.waitFor((line) => isPrimary(line) && line.msg === 'every worker listening', 'every worker listening', 30_000)])
  // Three processes reach Redis: the primary (for the call.stop of a worker that dies) and both workers.
  await Promise.race([died, server.lines.waitFor(() => new Set(server.lines.items.filter((line) => line.msg === 'redis connected').map((line) => line.pid)).size === 3, 'redis connected x3', 30_000)])
  const workerPids = server.lines.items.filter((line) => isPrimary(line) && line.msg === 'worker listening').map((line) => line.worker_pid as number)
  return { ...server, wsUrl: `ws://127.0.0.1:${port}`, url: `http://127.0.0.1:${port}`, workerPids }
}

/** The worker process that started a call, from its 'call started' line. */
async function servedBy (group: Group, interactionId: string): Promise<number> {
  const line = await group.lines.waitFor((l) => l.msg === 'call started' && l.interaction_id === interactionId, `call started ${interactionId}`)
  return line.pid as number
}

/** Scrapes until a condition holds: each scrape reaches whichever worker takes it, and frames count once Redis acknowledges them. */
async function scrapeUntil (url: string, done: (samples: Sample[]) => boolean): Promise<Sample[]> {
  for (let attempt = 0; ; attempt++) {
    const samples = await scrape(url)
    if (done(samples) || attempt === 100) return samples
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

interface OpenCall {
  id: string
  client: ProviderClient
  pid: number
}

/** An Exotel call with `frames` frames of 320 bytes, once they are all on Redis. */
async function openCall (group: Group, subscriber: Subscriber, id: string, frames: number): Promise<OpenCall> {
  const client = await ProviderClient.connect(`${group.wsUrl}/v1/ingest?sample-rate=8000`)
  client.send(exotelStrings.start(id))
  for (let i = 0; i < frames; i++) client.send(exotelStrings.media(`MZ${id}`, i + 2, i + 1, i * 20, pcmFrame(320, i)))
  await subscriber.waitForEvent('call.start', id)
  if (frames > 0) await subscriber.published.waitFor(() => subscriber.frames(id).length === frames, `${frames} frames of ${id}`)
  return { id, client, pid: await servedBy(group, id) }
}

t.test('the process group\'s metrics: counters and gauges sum, the Redis state and the event-loop delay are the worst process\'s', async (t) => {
  const [a, b] = [createMetrics({ tenantLabel: false }), createMetrics({ tenantLabel: false })]
  a.callsStarted.inc({ vendor: 'exotel' }, 2)
  b.callsStarted.inc({ vendor: 'exotel' }, 3)
  a.callsActive.inc({ vendor: 'exotel' })
  b.callsActive.inc({ vendor: 'exotel' }, 2)
  a.redisConnected.set(1)
  b.redisConnected.set(0)
  a.redisBufferBytes.set(10)
  b.redisBufferBytes.set(700)
  a.publishLatency.observe(0.001)
  b.publishLatency.observe(0.001)
  const lag = (value: number): Registry => {
    const registry = new Registry()
    new Gauge({ name: 'nodejs_eventloop_lag_p99_seconds', help: 'p99', registers: [registry], aggregator: 'average' }).set(value)
    return registry
  }
  const [snapshotA, snapshotB] = [await a.registry.getMetricsAsJSON(), await b.registry.getMetricsAsJSON()]
  const group = await aggregateGroup([snapshotA, snapshotB, await lag(0.01).getMetricsAsJSON(), await lag(0.5).getMetricsAsJSON()]).getMetricsAsJSON()
  const value = (name: string, metricName = name): number | undefined => group.find((m) => m.name === name)?.values
    .find((v) => (v as { metricName?: string }).metricName === undefined || (v as { metricName?: string }).metricName === metricName)?.value
  t.equal(value('rtaa_calls_started_total'), 5)
  t.equal(value('rtaa_calls_active'), 3)
  t.equal(value('rtaa_redis_connected'), 0, 'one process without Redis: the group reads 0')
  t.equal(value('rtaa_redis_buffer_bytes'), 700, 'the fullest buffer')
  t.equal(value('rtaa_publish_latency_seconds', 'rtaa_publish_latency_seconds_count'), 2)
  t.equal(value('nodejs_eventloop_lag_p99_seconds'), 0.5, 'the most lagging process')

  const kept = keepCounted(keepCounted([], snapshotA), snapshotB)
  const keptValue = (name: string): number | undefined => kept.find((m) => m.name === name)?.values[0]?.value
  t.equal(keptValue('rtaa_calls_started_total'), 5, 'exited workers\' counters are kept, summed')
  t.ok(kept.some((m) => m.name === 'rtaa_publish_latency_seconds'), 'and their histograms')
  t.notOk(kept.some((m) => m.name === 'rtaa_calls_active' || m.name === 'rtaa_redis_connected'), 'their gauges go with them')
})

t.test('WORKERS=2: both workers serve calls, /metrics sums both, and SIGTERM drains both', async (t) => {
  const prefix = 'workers-drain:'
  const group = await startGroup(t, { REDIS_PREFIX: prefix, DRAIN_TIMEOUT_MS: '1500', ADMIN_PORT: String(await freePort()) })
  t.equal(group.workerPids.length, 2, 'two workers listen')
  t.notOk(group.workerPids.includes(group.child.pid as number), 'neither is the primary')
  const subscriber = await Subscriber.start(t, redis.url, prefix)

  const calls: OpenCall[] = []
  for (let i = 0; i < 6; i++) calls.push(await openCall(group, subscriber, `CAgroup${i}`, 2))
  const pids = new Set(calls.map((call) => call.pid))
  t.same([...pids].sort(), [...group.workerPids].sort(), 'the calls were spread over both workers')

  // Whichever worker a scrape reaches, it answers for the whole group.
  const exotel = { vendor: 'exotel' }
  for (let i = 0; i < 4; i++) {
    const samples = await scrapeUntil(group.url, (s) => total(s, 'rtaa_frames_published_total', exotel) === 12)
    t.equal(total(samples, 'rtaa_calls_started_total', exotel), 6, 'calls started, both workers\' together')
    t.equal(total(samples, 'rtaa_calls_active', exotel), 6)
    t.equal(total(samples, 'rtaa_inbound_frames_total', exotel), 12)
    t.equal(total(samples, 'rtaa_frames_published_total', exotel), 12)
    t.equal(total(samples, 'rtaa_workers'), 2)
    t.equal(total(samples, 'rtaa_worker_restarts_total'), 0)
    t.equal(total(samples, 'rtaa_redis_connected'), 1, 'every process reaches Redis')
  }

  group.child.kill('SIGTERM')
  await group.lines.waitFor(() => group.lines.items.filter((line) => line.msg === 'draining live calls').length === 2, 'both workers draining')
  const ready = await fetch(`${group.url}/ready`)
  t.equal(ready.status, 503, '/ready fails on whichever worker answers')
  t.same(await ready.json(), { status: 'not_ready', reasons: ['shutting_down'] })
  t.equal((await refusedUpgrade(`${group.wsUrl}/v1/ingest?sample-rate=8000`)).status, 503, 'a new call is refused')

  // Half the calls end as they would have, the rest outlive the drain; each gets its call.stop.
  for (const { id, client } of calls.slice(0, 3)) client.send(exotelStrings.stop(id, `MZ${id}`, 4))
  for (const { id, client } of calls.slice(0, 3)) {
    t.equal((await client.closed).code, 1000)
    t.match(await subscriber.waitForEvent('call.stop', id), { reason: 'callended', frames: 2, bytes: 640 })
  }
  for (const { id, client } of calls.slice(3)) {
    t.same(await client.closed, { code: 1001, reason: 'server shutting down' })
    t.match(await subscriber.waitForEvent('call.stop', id), { reason: 'shutdown', frames: 2, bytes: 640 })
  }
  t.equal(await group.exited, 0, 'the primary exits 0 once both workers drained')
  const exits = group.lines.items.filter((line) => isPrimary(line) && line.msg === 'worker exited')
  t.same(exits.map((line) => line.worker_pid).sort(), [...group.workerPids].sort(), 'both workers exited')
  t.ok(exits.every((line) => line.code === 0), 'with status 0')
  t.notOk(group.lines.items.some((line) => line.msg === 'restarting a worker'), 'none was restarted during the shutdown')
})

t.test('SIGKILL of a worker: each of its calls gets call.stop worker_exited and its claim back, a new worker replaces it, calls go on', async (t) => {
  const prefix = 'workers-kill:'
  const group = await startGroup(t, { REDIS_PREFIX: prefix })
  const subscriber = await Subscriber.start(t, redis.url, prefix)
  const calls: OpenCall[] = []
  for (let i = 0; i < 4; i++) calls.push(await openCall(group, subscriber, `CAkill${i}`, 3))
  const victim = calls[0].pid
  const doomed = calls.filter((call) => call.pid === victim)
  const survivors = calls.filter((call) => call.pid !== victim)
  t.ok(survivors.length > 0, 'the other worker holds calls too')

  // A scrape before the kill: what the worker counted stays in the group's counters after it is gone.
  const before = await scrapeUntil(group.url, (s) => total(s, 'rtaa_calls_started_total') === 4)
  t.equal(total(before, 'rtaa_calls_started_total'), 4)
  // Workers tell the primary their calls' counts once a second: the kill waits for the victim's report that holds
  // every frame of its calls.
  const victimFrames = doomed.length * 3
  await group.lines.waitFor((line) => isPrimary(line) && line.msg === 'call counts reported' && line.worker_pid === victim && line.frames === victimFrames,
    'a count report with every frame of the victim\'s calls')

  const claimKey = (id: string): string => `${prefix}call:{~ACxxxxxxxxxxxxxxxxxxxxxxxx:${id}}`
  const listener = new Redis(redis.url)
  t.teardown(() => listener.disconnect())
  await listener.config('SET', 'notify-keyspace-events', 'Egx')
  const released = new Collected<string>()
  listener.on('message', (_channel: string, key: string) => released.push(key))
  await listener.subscribe('__keyevent@0__:del')

  const killedAt = Date.now()
  process.kill(victim, 'SIGKILL')
  for (const { id, client } of doomed) {
    const stop = await subscriber.waitForEvent('call.stop', id) as CallStopEvent
    const start = subscriber.events(id).find((event) => event.type === 'call.start') as CallStartEvent
    t.match(stop, {
      reason: 'worker_exited',
      interaction_id: id,
      tenant_id: start.tenant_id,
      tenant_verified: start.tenant_verified,
      vendor: 'exotel',
      stream_id: `MZ${id}`,
      frames: 3,
      bytes: 960,
      frames_lost: 0,
      gaps: 0,
      duplicates: 0,
      reordered: 0
    }, `${id}: call.stop from the primary, with the counts the worker last reported`)
    t.ok(stop.duration_ms >= killedAt - start.ts - 50, `${id}: its duration runs from call.start`)
    t.equal((await client.closed).code, 1006, `${id}: the vendor's socket dropped with the process`)
    t.equal(subscriber.events(id).filter((event) => event.type === 'call.stop').length, 1, `${id}: one call.stop`)
  }
  const exited = await group.lines.waitFor((line) => isPrimary(line) && line.msg === 'worker exited unexpectedly', 'worker exited unexpectedly')
  t.match(exited, { level: 50, worker_pid: victim, signal: 'SIGKILL', calls: doomed.length })

  // The claim is given up at once, well within CALL_CLAIM_TTL_MS (30 s): the stream can reconnect to the group.
  const again = doomed[0].id
  await released.waitFor((key) => key === claimKey(again), `claim of ${again} released`, 5000)
  const reconnected = await ProviderClient.connect(`${group.wsUrl}/v1/ingest?sample-rate=8000`)
  reconnected.send(exotelStrings.start(again))
  reconnected.send(exotelStrings.stop(again, `MZ${again}`, 2))
  t.same(await reconnected.closed, { code: 1000, reason: 'stream stopped' }, 'the call streams again at once')
  await subscriber.published.waitFor(() => subscriber.events(again).filter((event) => event.type === 'call.stop').length === 2, 'the new stream\'s call.stop')
  t.match(subscriber.events(again).map((event) => event.type), ['call.start', 'call.stop', 'call.start', 'call.stop'])

  // The other worker's calls never noticed.
  for (const { id, client } of survivors) {
    client.send(exotelStrings.media(`MZ${id}`, 5, 4, 60, pcmFrame(320, 4)))
    client.send(exotelStrings.stop(id, `MZ${id}`, 6))
    t.equal((await client.closed).code, 1000)
    t.match(await subscriber.waitForEvent('call.stop', id), { reason: 'callended', frames: 4 })
  }

  // A replacement comes up and serves.
  const replaced = await group.lines.waitFor((line) => isPrimary(line) && line.msg === 'worker listening' && !group.workerPids.includes(line.worker_pid as number), 'the replacement worker listening', 20_000)
  const replacement = replaced.worker_pid as number
  let served = false
  for (let i = 0; i < 6 && !served; i++) {
    const call = await openCall(group, subscriber, `CAafter${i}`, 1)
    call.client.send(exotelStrings.stop(call.id, `MZ${call.id}`, 3))
    t.equal((await call.client.closed).code, 1000)
    await subscriber.waitForEvent('call.stop', call.id)
    served = call.pid === replacement
  }
  t.ok(served, 'the replacement worker serves calls')

  const started = subscriber.events().filter((event) => event.type === 'call.start').length
  const after = await scrapeUntil(group.url, (s) => total(s, 'rtaa_workers') === 2 && total(s, 'rtaa_calls_started_total') === started)
  t.equal(total(after, 'rtaa_workers'), 2)
  t.equal(total(after, 'rtaa_worker_restarts_total'), 1, 'the restart is counted')
  t.equal(total(after, 'rtaa_calls_ended_total', { reason: 'worker_exited' }), doomed.length)
  t.equal(total(after, 'rtaa_calls_started_total'), started, 'the dead worker\'s calls still count: the counter did not fall')
  t.equal(total(after, 'rtaa_calls_active'), 0)

  group.child.kill('SIGTERM')
  t.equal(await group.exited, 0)
})

t.test('WORKERS=2 with the port taken: the workers cannot listen, and the primary exits 1', async (t) => {
  const port = await freePort()
  const taken = createServer().listen(port, '127.0.0.1')
  await once(taken, 'listening')
  t.teardown(() => taken.close())
  const dir = mkdtempSync(join(tmpdir(), 'rtaa-workers-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const server = runServer(dir, { WORKERS: '2', REDIS_URL: redis.url, HOST: '127.0.0.1', PORT: String(port) })
  t.teardown(() => server.child.kill('SIGKILL'))
  t.equal(await server.exited, 1)
  t.ok(server.lines.items.some((line) => line.msg === 'cannot listen' && line.worker !== undefined), 'a worker says why')
  t.match(server.lines.items.find((line) => isPrimary(line) && line.level === 60), { msg: 'a worker could not start: stopping' })
  t.notOk(server.lines.items.some((line) => line.msg === 'restarting a worker'), 'no restart loop')
})

t.test('WORKERS=2: the dashboard shows both workers and every call, whichever worker serves it, and listens in across workers', async (t) => {
  const prefix = 'workers-dashboard:'
  const group = await startGroup(t, { REDIS_PREFIX: prefix, DASHBOARD_LISTEN: 'true' })
  const subscriber = await Subscriber.start(t, redis.url, prefix)
  const calls: OpenCall[] = []
  for (let i = 0; i < 4; i++) calls.push(await openCall(group, subscriber, `CAdash${i}`, 1))
  t.same([...new Set(calls.map((call) => call.pid))].sort(), [...group.workerPids].sort(), 'the calls are spread over both workers')

  // Each request may reach either worker: every one answers for the group.
  for (let i = 0; i < 4; i++) {
    const view = await fetch(`${group.url}/dashboard/view`, { headers: { connection: 'close' } }).then(async (response) => response.json()) as DashboardView
    t.same(view.processes.map((process) => process.pid).sort(), [...group.workerPids].sort(), 'a panel per worker')
    t.ok(view.processes.every((process) => typeof process.worker === 'number' && process.max_calls === 120), 'each named by its worker id')
    t.same(view.calls.map((call) => call.interaction_id).sort(), calls.map((call) => call.id).sort(), 'every call of the group')
    t.same(view.calls.map((call) => call.pid).sort(), calls.map((call) => call.pid).sort(), 'each with the worker that holds it')
  }

  // A listen-in served by one worker for a call the other holds: its audio comes through the primary.
  const target = calls[0]
  const id = `{~ACxxxxxxxxxxxxxxxxxxxxxxxx:${target.id}}`
  let listening = await listenIn(t, group.url, id, 'inbound', { connection: 'close' })
  for (let attempt = 0; ; attempt++) {
    t.equal(listening.status, 200)
    const started = await group.lines.waitFor(() => group.lines.items.filter((line) => line.msg === 'listen-in started').length === attempt + 1, 'listen-in started')
      .then(() => group.lines.items.filter((line) => line.msg === 'listen-in started')[attempt])
    const servedBy = started.pid as number
    if (servedBy !== target.pid || attempt === 10) {
      t.not(servedBy, target.pid, 'served by the worker that does not hold the call')
      t.match(started, { interaction_id: target.id, track: 'inbound', viewer: 'ip:127.0.0.1' })
      break
    }
    listening.close()
    await group.lines.waitFor((line) => line.msg === 'listen-in ended' && line.pid === servedBy && line.reason === 'viewer_left' &&
      group.lines.items.filter((l) => l.msg === 'listen-in ended').length === attempt + 1, 'the listen-in served by the same worker ended')
    listening = await listenIn(t, group.url, id, 'inbound', { connection: 'close' })
  }
  const frames = [pcmFrame(320, 50), pcmFrame(320, 51), pcmFrame(320, 52)]
  for (const [i, pcm] of frames.entries()) target.client.send(exotelStrings.media(`MZ${target.id}`, i + 3, i + 2, (i + 1) * 20, pcm))
  target.client.send(exotelStrings.stop(target.id, `MZ${target.id}`, 6))
  const bytes = await listening.ended
  t.ok(bytes.equals(Buffer.concat(frames)), 'the frames, byte for byte, and the stream ends with the call')
  t.match(await group.lines.waitFor((line) => line.msg === 'listen-in ended' && line.reason === 'call_ended'), { bytes: 960, viewer: 'ip:127.0.0.1' })
})
