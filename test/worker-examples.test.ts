import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { exotelStrings, pcmFrame, ProviderClient } from './helpers/exotel.js'
import { TestRedisCluster } from './helpers/redis-cluster.js'
import { TestRedis } from './helpers/redis-server.js'
import { startToolsGateway, tool } from './helpers/tools.js'
import { Collected } from './helpers/waiter.js'

/**
 * The example workers of examples/workers/ (docs/redis-contract.md, "Streams mode" and "Redis Cluster"), run as users
 * run them, against a live gateway and real calls from rtaa-sim. Each prints a line per frame
 * (`frame <tenant> <interaction_id> <seq> <pcm bytes>`) and per call end (`end <tenant> <interaction_id> <reason>
 * <frames> <frames_lost>`); the tests read those lines, and Redis's own view of the consumer groups.
 */

const example = (path: string): string => fileURLToPath(new URL(`../examples/workers/${path}`, import.meta.url))
// Debian's python3 has redis-py (apt-get install python3-redis); a python3 earlier on PATH may not.
const PYTHON = '/usr/bin/python3'
const WORKERS = {
  node: { streams: [process.execPath, example('node/streams-worker.mjs')], cluster: [process.execPath, example('node/cluster-worker.mjs')] },
  python: { streams: [PYTHON, example('python/streams_worker.py')], cluster: [PYTHON, example('python/cluster_worker.py')] }
}
type Language = keyof typeof WORKERS

const SIM_CHUNK_MS = 20
const FRAME_BYTES = 8000 * 2 * SIM_CHUNK_MS / 1000 // rtaa-sim's default rate, 8 kHz

interface Worker {
  child: ChildProcess
  /** Every complete line printed on stdout, split into words. */
  lines: Collected<string[]>
  exited: Promise<number | null>
  stderr: () => string
}

const running = new Set<ChildProcess>()
// A test file that times out is killed before its teardowns: its workers must not outlive it.
process.once('exit', () => { for (const child of running) child.kill('SIGKILL') })

/** Starts an example worker and resolves once it prints `ready` (its consumer groups exist). */
async function startWorker (t: Test, language: Language, kind: 'streams' | 'cluster', args: string[], env: Record<string, string>): Promise<Worker> {
  const [command, script] = WORKERS[language][kind]
  const child = spawn(command, [script, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(child)
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  exited.finally(() => running.delete(child)).catch(() => {})
  t.teardown(() => { child.kill('SIGKILL') })
  const lines = new Collected<string[]>()
  let partial = ''
  child.stdout.on('data', (chunk: Buffer) => {
    const complete = (partial + chunk.toString()).split('\n')
    partial = complete.pop() ?? ''
    for (const line of complete) lines.push(line.split(' '))
  })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const died = exited.then((code) => { throw new Error(`${language} ${kind} worker exited with ${code} before it was ready: ${stderr}`) })
  await Promise.race([died, lines.waitFor(([word]) => word === 'ready', 'ready', 20_000)])
  died.catch(() => {})
  return { child, lines, exited, stderr: () => stderr }
}

/** Resolves with a call's end line: `end <tenant> <interaction_id> <reason> <frames> <frames_lost>`. */
function callEnded (worker: Worker, interactionId: string, timeoutMs = 20_000): Promise<string[]> {
  return worker.lines.waitFor(([word, , id]) => word === 'end' && id === interactionId, `the end of ${interactionId}`, timeoutMs)
}

/** The `[seq, pcm bytes]` of every frame line a worker printed for a call, in the order printed. */
function framesOf (worker: Worker, interactionId: string): Array<[number, number]> {
  return worker.lines.items
    .filter(([word, , id]) => word === 'frame' && id === interactionId)
    .map(([, , , seq, bytes]) => [Number(seq), Number(bytes)])
}

/** Asserts that `frames` hold each seq 1..count exactly once, each with a whole frame of PCM. */
function assertEveryFrameOnce (t: Test, frames: Array<[number, number]>, count: number, what: string): void {
  const seqs = frames.map(([seq]) => seq).sort((a, b) => a - b)
  t.same(seqs, Array.from({ length: count }, (_, i) => i + 1), `${what}: seqs 1..${count}, each once`)
  t.ok(frames.every(([, bytes]) => bytes === FRAME_BYTES), `${what}: every frame holds ${FRAME_BYTES} bytes of PCM`)
}

/** Runs rtaa-sim's Exotel calls at 8 kHz in 20 ms frames; resolves with its summary once every call is done. */
async function simulate (t: Test, wsUrl: string, callPrefix: string, calls: number, durationS: number, extra: string[] = []): Promise<{ frames_sent: number }> {
  const run = await tool('rtaa-sim', ['--url', `${wsUrl}/v1/ingest`, '--calls', String(calls), '--duration', String(durationS),
    '--chunk-ms', String(SIM_CHUNK_MS), '--call-prefix', callPrefix, ...extra], t.testdir()).done
  t.equal(run.code, 0, `rtaa-sim: ${run.stderr}`)
  return JSON.parse(run.stdout) as { frames_sent: number }
}

const ids = (prefix: string, calls: number): string[] => Array.from({ length: calls }, (_, i) => `${prefix}-${i + 1}`)

t.test('Streams mode', async (t) => {
  const redis = await TestRedis.start()
  t.teardown(() => redis.stop())
  const gateway = await startToolsGateway(t, redis.url, { REDIS_TRANSPORT: 'streams' })
  const env = { REDIS_URL: redis.url, REDIS_PREFIX: gateway.prefix }
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  // A call's stream is named by its call.start: the call's tag, and when that stream of it started.
  const audioStream = async (id: string): Promise<string> => {
    const starts = (await admin.xrange(`${gateway.prefix}calls`, '-', '+')).filter(([, [, type, , json]]) => type === 'call.start' && JSON.parse(json).interaction_id === id)
    return (JSON.parse(starts[0][1][3]) as { audio_stream: string }).audio_stream
  }

  t.test('every worker gets every frame of every call once: a group each, a group shared by Node and Python, and a late joiner', async (t) => {
    const calls = ids('each', 4)
    const own = { node: await startWorker(t, 'node', 'streams', ['own-node', 'n1'], env), python: await startWorker(t, 'python', 'streams', ['own-python', 'p1'], env) }
    const shared = [await startWorker(t, 'node', 'streams', ['shared', 'node-1'], env), await startWorker(t, 'python', 'streams', ['shared', 'python-1'], env)]
    const sim = simulate(t, gateway.wsUrl, 'each', calls.length, 1, ['--dtmf', '5'])

    // Events may repeat after a Redis failure. Each call.start added again while its call lives, as the gateway's
    // retry would add it, is skipped by whichever consumer gets it: no call is read twice, or split in a group.
    const isStart = (id: string) => ([word, , callId]: string[]) => word === 'start' && callId === id
    const isRepeat = (id: string) => ([word, , callId]: string[]) => word === 'repeat' && callId === id
    for (const id of calls) {
      await Promise.all([own.node.lines.waitFor(isStart(id)), own.python.lines.waitFor(isStart(id))])
      const [[, fields]] = (await admin.xrange(`${gateway.prefix}calls`, '-', '+')).filter(([, [, type, , json]]) => type === 'call.start' && JSON.parse(json).interaction_id === id)
      await admin.xadd(`${gateway.prefix}calls`, '*', ...fields)
    }
    const { frames_sent: sent } = await sim
    const perCall = sent / calls.length
    for (const id of calls) {
      await Promise.all([own.node.lines.waitFor(isRepeat(id)), own.python.lines.waitFor(isRepeat(id)), Promise.any(shared.map((worker) => worker.lines.waitFor(isRepeat(id))))])
    }

    for (const [language, worker] of Object.entries(own)) {
      for (const id of calls) {
        t.same((await callEnded(worker, id)).slice(3), ['callended', String(perCall), '0'], `${language}: ${id} ends, no frame lost`)
        assertEveryFrameOnce(t, framesOf(worker, id), perCall, `${language}, ${id}`)
        t.ok(worker.lines.items.some(([word, type, , callId]) => word === 'event' && type === 'call.dtmf' && callId === id), `${language}: ${id}'s dtmf event`)
      }
    }

    // A call.start goes to one consumer of a group, and that consumer reads the call's audio.
    for (const id of calls) {
      const takers = shared.filter((worker) => worker.lines.items.some(isStart(id)))
      t.equal(takers.length, 1, `${id} is taken by one worker of the shared group`)
      t.equal(shared.flatMap((worker) => worker.lines.items.filter(isRepeat(id))).length, 1, `${id}'s repeated call.start is skipped once in the group`)
      await callEnded(takers[0], id)
      assertEveryFrameOnce(t, shared.flatMap((worker) => framesOf(worker, id)), perCall, `shared group, ${id}`)
    }
    t.comment(`shared group: node took ${shared[0].lines.items.filter(([word]) => word === 'start').length} of the ${calls.length} calls, python the others`)

    // Joined after the calls ended, from the start of the events stream: every call from its first frame.
    for (const language of ['node', 'python'] as const) {
      const late = await startWorker(t, language, 'streams', [`late-${language}`, 'l1'], { ...env, EVENTS_FROM: '0' })
      for (const id of calls) {
        await Promise.all([callEnded(late, id), late.lines.waitFor(isRepeat(id))])
        assertEveryFrameOnce(t, framesOf(late, id), perCall, `late ${language}, ${id}`)
      }
      await handledAll(late, admin, gateway.prefix)
      late.child.kill('SIGKILL')
    }

    for (const group of ['own-node', 'own-python', 'shared', 'late-node', 'late-python']) {
      t.equal(await pendingCount(admin, `${gateway.prefix}calls`, group), 0, `${group}: no call.start left pending once every call ended`)
      for (const id of calls) t.equal(await pendingCount(admin, await audioStream(id), group), 0, `${group}: nothing of ${id} left pending`)
    }
  })

  for (const language of ['node', 'python'] as const) {
    t.test(`${language}: a worker killed mid-call (SIGKILL) and restarted in the same consumer group ends with every frame exactly once (acked)`, async (t) => {
      const id = `kill-${language}-1`
      const group = `kill-${language}`
      let key = ''
      const first = await startWorker(t, language, 'streams', [group, 'w'], env)
      const sim = simulate(t, gateway.wsUrl, `kill-${language}`, 1, 3)

      // Mid-call, stop the worker and let the gateway add frames behind it. Stopped while it waited for an XACK's
      // answer, it holds nothing: let it go on and stop it again. Then kill it: what Redis had handed it and it had
      // not acknowledged stays pending in its consumer's list.
      let pending: number[] = []
      for (let after = 40; pending.length === 0; after += 5) {
        const [, , , seq] = await first.lines.waitFor(([word, , callId, printed]) => word === 'frame' && callId === id && Number(printed) >= after, `frame ${after}`)
        key ||= await audioStream(id)
        first.child.kill('SIGSTOP')
        await admin.xread('BLOCK', 10_000, 'STREAMS', key, `0-${Number(seq) + 3}`)
        pending = (await admin.xpending(key, group, '-', '+', 1000) as Array<[string, string]>).map(([entryId]) => Number(entryId.split('-')[1]))
        if (pending.length === 0) first.child.kill('SIGCONT')
      }
      first.child.kill('SIGKILL')
      await first.exited
      t.comment(`the kill left frames ${pending.join(', ')} pending: the restart reads them first`)
      t.match(await admin.xpending(`${gateway.prefix}calls`, group), [1, String, String, [['w', '1']]], 'the call.start stays pending while its call is not done')

      const second = await startWorker(t, language, 'streams', [group, 'w'], env)
      const { frames_sent: frames } = await sim
      t.same((await callEnded(second, id)).slice(3), ['callended', String(frames), '0'])
      await handledAll(second, admin, gateway.prefix)

      const before = framesOf(first, id)
      const after = framesOf(second, id)
      assertEveryFrameOnce(t, [...new Map([...before, ...after]).entries()], frames, 'both runs together')
      const twice = after.map(([seq]) => seq).filter((seq) => before.some(([earlier]) => earlier === seq))
      t.ok(twice.every((seq) => pending.includes(seq)), `a frame printed by both runs (${twice.join(', ') || 'none'}) was one not yet acknowledged at the kill`)
      const ready = second.lines.items.findIndex(([word]) => word === 'ready')
      const printedAt = (seq: number): number => second.lines.items.findIndex(([word, , callId, printed]) => word === 'frame' && callId === id && Number(printed) === seq)
      t.ok(pending.every((seq) => printedAt(seq) >= 0 && printedAt(seq) < ready), 'the restarted worker handled its pending frames before reading new ones')

      // Redis's own count: every entry, the end included, delivered once as new, and all acknowledged.
      t.equal(await pendingCount(admin, key, group), 0, 'nothing left pending on the audio stream')
      t.equal(await pendingCount(admin, `${gateway.prefix}calls`, group), 0, 'nor on the events stream')
      t.match(groupInfo(await admin.xinfo('GROUPS', key) as unknown[][], group),
        { pending: 0, 'last-delivered-id': `0-${frames + 1}`, 'entries-read': frames + 1, lag: 0 })
    })
  }
})

t.test('Redis Cluster', async (t) => {
  const cluster = await TestRedisCluster.start()
  t.teardown(() => cluster.stop())
  // Exotel calls of the helper's account, admitted by the IP allowlist: unverified, so their tag is {~account:id}.
  const tenant = `~${exotelStrings.start('x').start.account_sid}`
  const FRAMES = 50

  /**
   * One Exotel call of FRAMES frames, sent as fast as the gateway takes them once `beforeAudio` resolves: the
   * tests, not the clock, decide when the audio comes.
   */
  async function call (wsUrl: string, id: string, beforeAudio: () => Promise<unknown> = async () => {}): Promise<void> {
    const client = await ProviderClient.connect(`${wsUrl}/v1/ingest/exotel?sample-rate=8000`)
    const streamSid = `MZ${id}`
    client.send(exotelStrings.start(id, streamSid))
    await beforeAudio()
    for (let chunk = 1; chunk <= FRAMES; chunk++) client.send(exotelStrings.media(streamSid, chunk + 1, chunk, (chunk - 1) * SIM_CHUNK_MS, pcmFrame(FRAME_BYTES, chunk)))
    client.send(exotelStrings.stop(id, streamSid, FRAMES + 2))
    t.match(await client.closed, { code: 1000 }, `${id} stopped`)
  }

  t.test('node: sharded pub/sub, SSUBSCRIBE per call on its own shard: every frame once', async (t) => {
    const gateway = await startToolsGateway(t, 'redis://127.0.0.1', { REDIS_CLUSTER_NODES: cluster.seeds })
    const worker = await startWorker(t, 'node', 'cluster', [], { REDIS_CLUSTER_NODES: cluster.seeds, REDIS_PREFIX: gateway.prefix })
    const calls = await cluster.spreadIds(3, { tenant, prefix: 'pubsub' }) // one on each master

    // Sharded pub/sub has no patterns: a frame published before the worker's SSUBSCRIBE of its call is not
    // delivered. So each call's audio starts once the worker says it is subscribed (a vendor does not wait).
    await Promise.all(calls.map((id) => call(gateway.wsUrl, id, () => worker.lines.waitFor(([word, , callId]) => word === 'start' && callId === id, `${id} subscribed`))))
    for (const id of calls) {
      const channel = worker.lines.items.find(([word, , callId]) => word === 'start' && callId === id)?.[3]
      t.equal(channel, `${gateway.prefix}audio:{${tenant}:${id}}`, `${id}: SSUBSCRIBEd to the call.start's audio_channel`)
      t.same((await callEnded(worker, id)).slice(3), ['callended', String(FRAMES), '0'], `${id} ends, no frame lost`)
      assertEveryFrameOnce(t, framesOf(worker, id), FRAMES, id)
    }
    t.equal(new Set(await Promise.all(calls.map(async (id) => (await cluster.masterFor(`{${tenant}:${id}}`)).port))).size, 3, 'the calls were on three shards')
  })

  t.test('python: Streams through RedisCluster, a thread per call: every frame once, from the first', async (t) => {
    const gateway = await startToolsGateway(t, 'redis://127.0.0.1', { REDIS_CLUSTER_NODES: cluster.seeds, REDIS_TRANSPORT: 'streams' })
    const worker = await startWorker(t, 'python', 'cluster', ['cluster-python', 'c1'], { REDIS_CLUSTER_NODES: cluster.seeds, REDIS_PREFIX: gateway.prefix })
    const calls = await cluster.spreadIds(3, { tenant, prefix: 'streams' })

    // Nothing waits for the worker here: the streams keep every frame until it reads them.
    await Promise.all(calls.map((id) => call(gateway.wsUrl, id)))
    for (const id of calls) {
      t.same((await callEnded(worker, id)).slice(3), ['callended', String(FRAMES), '0'], `${id} ends, no frame lost`)
      assertEveryFrameOnce(t, framesOf(worker, id), FRAMES, id)
    }
  })
})

/** The barrier events' entry ids: a worker may not have acknowledged the last one yet when a test looks. */
const barriers = new Set<string>()

/**
 * Resolves once a worker has handled, and acknowledged, every entry it read before: it prints `end` before it
 * acknowledges, and handles entries one at a time, so an event of a type it does not know, added now, is printed after.
 * (XACK makes no event a test could wait on.)
 */
async function handledAll (worker: Worker, redis: Redis, prefix: string): Promise<void> {
  const id = `barrier-${barriers.size + 1}`
  barriers.add(await redis.xadd(`${prefix}calls`, '*', 'type', 'test.barrier', 'event', JSON.stringify({ type: 'test.barrier', tenant_id: null, interaction_id: id })) as string)
  await worker.lines.waitFor(([word, type, , callId]) => word === 'event' && type === 'test.barrier' && callId === id, id)
}

/** The entries of a stream handed to a group's consumers and not acknowledged, barrier events aside. */
async function pendingCount (redis: Redis, key: string, group: string): Promise<number> {
  const pending = await redis.xpending(key, group, '-', '+', 1000) as Array<[string]>
  return pending.filter(([id]) => !barriers.has(id)).length
}

function groupInfo (groups: unknown[][], name: string): Record<string, unknown> {
  for (const fields of groups) {
    const info: Record<string, unknown> = {}
    for (let i = 0; i < fields.length; i += 2) info[String(fields[i])] = fields[i + 1]
    if (info.name === name) return info
  }
  throw new Error(`no group ${name}`)
}
