/**
 * Runs the baseline and the gateway side by side in one run (docs/benchmarks.md, "The harness"): each server
 * pinned to CPU 1 with taskset where available, the load generator, the latency sink and redis-server on CPU 0.
 *
 *   npm run bench          full: steps until p99 ≥ 20 ms or loss, then bisection; ABBA order; results JSON + table
 *   npm run bench:quick    fixed loads, AB order, about 3 minutes
 *   npm run bench:smoke    one small step each, ~30 s, gateway+streams too: proves the harness runs (CI); asserts no speed
 *
 * BENCH_VARIANTS lists the servers in run order, e.g. `gateway@HEAD~1,gateway,gateway,gateway@HEAD~1`: a variant
 * `gateway@<git ref>` runs that commit's gateway from a temporary worktree, so one change's before and after are
 * measured side by side, in ABBA order, in one run. BENCH_LOADS fixes the loads (calls). BENCH_CPU_PROF=1 profiles
 * each server run (`npx tsx bench/profile-summary.ts <file>` summarises one).
 *
 * A variant may end in settings, each after a `+` (bench/servers.ts, parseVariant), composable with `@<ref>`:
 *   gateway+streams                  REDIS_TRANSPORT=streams; the sink then reads the calls' audio streams (XREAD)
 *   gateway+workers2                 WORKERS=2; the server runs on CPUs 0-1, beside the load generator (not pinned apart)
 *   gateway+cpus0-1                  the server's taskset CPU list (default 1, or 0-1 with more than one worker)
 *   gateway+REDIS_STREAM_MAXLEN=300  any NAME=value as the server's environment
 *   gateway@HEAD~1+streams+workers2  all of them together
 * e.g. `BENCH_VARIANTS=gateway,gateway+streams,gateway+streams,gateway npm run bench:quick`. In Streams mode each
 * step also reports the Redis memory the step's audio streams hold (MEMORY USAGE), per entry and per call-minute.
 *
 * Each step counts the CPU other processes on the machine took meanwhile (/proc/stat less this benchmark's own); over
 * 20 % of a CPU makes the step invalid, and it is run again, up to BENCH_NOISY_RETRIES times (2; 0 in smoke).
 *
 * `floor` (bench/floor-server.ts) moves the bytes and parses nothing. When it ran, the headline states every variant
 * as a fraction of it (fraction_of_floor). The headline also says up to which load every step was valid.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { TestRedis, freePort } from '../test/helpers/redis-server.js'
import { Collected } from '../test/helpers/waiter.js'
import { onStop, track } from './children.js'
import { parseVariant, removeWorktrees, root, serverCommand, untilReady, type Variant } from './servers.js'

type Mode = 'full' | 'quick' | 'smoke'

/** What a Streams step's audio streams hold in Redis once its calls have ended (null for pub/sub). */
interface StreamMemory {
  keys: number
  /** XLEN summed: the frames kept, plus one end entry per call. */
  entries: number
  /** MEMORY USAGE <key> SAMPLES 0, summed over the step's audio streams. */
  bytes: number
  bytes_per_entry: number
  /** bytes ÷ (calls × minutes of audio kept): what a call-minute costs while under REDIS_STREAM_MAXLEN. */
  bytes_per_call_minute: number
  /** REDIS_STREAM_MAXLEN the server ran with, and a call's stream at that bound (bytes_per_entry × maxlen). */
  maxlen: number
  plateau_bytes_per_call: number
  /** INFO memory used_memory, after the step less before it (also counts buffers; a cross-check). */
  used_memory_delta: number
}

interface StepResult {
  variant: Variant
  calls: number
  frames_sent: number
  received: number
  lost: number
  duplicates: number
  reordered: number
  p50_ms: number
  p99_ms: number
  p999_ms: number
  max_ms: number
  server_cpu_pct: number
  cpu_us_per_frame: number
  eld_p99_ms: number
  eld_max_ms: number
  /** Garbage-collection pause per second of the window, and the longest single pause. */
  gc_ms_per_s: number
  gc_max_ms: number
  rss_mb: number
  heap_mb: number
  client_lateness_p99_ms: number
  client_cpu_pct: number
  /** CPU of the latency sink and of redis-server over the step (both on CPU 0 with the load generator). */
  sink_cpu_pct: number
  redis_cpu_pct: number
  /** redis-server's CPU over the step ÷ frames sent: writing each frame and handing it to the sink. */
  redis_us_per_frame: number
  /** CPU other processes on the machine took during the step, in % of one CPU (/proc/stat less this benchmark's). */
  others_cpu_pct: number
  /** Server processes probed: 1, or the primary and each worker with WORKERS > 1. */
  processes: number
  streams: StreamMemory | null
  valid: boolean
  pass: boolean
}

const mode = (process.argv[2] ?? 'quick') as Mode
const SAMPLE_RATE = Number(process.env.BENCH_SAMPLE_RATE ?? 16000)
const FRAME_MS = Number(process.env.BENCH_FRAME_MS ?? 20)
const SECONDS = { full: 30, quick: 12, smoke: 4 }[mode]
// Loads are in calls at 20 ms frames; at another cadence the same frame rates are tried (5× the calls at 100 ms).
const CALLS_SCALE = FRAME_MS / 20
const WARMUP_SECONDS = mode === 'smoke' ? 0 : 3
const NOISY_RETRIES = Number(process.env.BENCH_NOISY_RETRIES ?? (mode === 'smoke' ? 0 : 2))
const taskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0 && cpus().length >= 2

function pinned (cpus: string, command: string, args: string[]): [string, string[]] {
  return taskset ? ['taskset', ['-c', cpus, command, ...args]] : [command, args]
}

function start (cpu: string, args: string[], env: Record<string, string>, cwd = root): ChildProcess {
  const [command, argv] = pinned(cpu, process.execPath, args)
  // BENCH_PARENT_PID: each child ends itself when this process is gone (bench/lifeline.ts, bench/probe.mjs).
  return track(spawn(command, argv, { cwd, env: { PATH: process.env.PATH ?? '', ...env, BENCH_PARENT_PID: String(process.pid) }, stdio: ['ignore', 'pipe', 'inherit'] }))
}

const output = new WeakMap<ChildProcess, Collected<string>>()

/** The child's stdout, line by line, kept so a line printed before anyone waits for it is not lost. */
function firstLine (child: ChildProcess, match: (line: string) => boolean): Promise<string> {
  let lines = output.get(child)
  if (lines === undefined) {
    const collected = new Collected<string>()
    let buffered = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString()
      const complete = buffered.split('\n')
      buffered = complete.pop() ?? ''
      for (const line of complete) collected.push(line)
    })
    output.set(child, collected)
    lines = collected
  }
  return lines.waitFor(match, 'a line from a benchmark process', 120_000)
}

async function startServer (variant: Variant, port: number, redisUrl: string, probeFile: string): Promise<ChildProcess> {
  const { cpus: serverCpus, workers } = parseVariant(variant)
  // BENCH_CPU_PROF=1: each server writes V8 CPU profiles on exit, one per thread (the main thread's is the largest),
  // to a directory per run; bench/profile-summary.ts reads one.
  const profile = process.env.BENCH_CPU_PROF === '1'
    ? ['--cpu-prof', `--cpu-prof-dir=${join(root, 'bench', 'results', 'profiles', `${variant.replace(/\W/g, '_')}-${Date.now()}`)}`]
    : []
  // BENCH_NODE_FLAGS (e.g. --max-semi-space-size=64) go to every server alike, to compare runtime settings.
  const flags = process.env.BENCH_NODE_FLAGS?.split(' ').filter((flag) => flag !== '') ?? []
  const command = await serverCommand(variant, port, redisUrl, [...flags, ...profile, '--import', join(root, 'bench', 'probe.mjs')])
  const server = start(serverCpus, command.args, { ...command.env, PROBE_FILE: probeFile }, command.cwd)
  if (command.readyLine !== undefined) await firstLine(server, (line) => line === command.readyLine)
  else await untilReady(port)
  // WORKERS > 1: /ready answers from the first worker that listens; wait until the primary and every worker probe.
  const probing = (): number => new Set(readProbe(probeFile).map((line) => line.pid)).size
  if (workers > 1) {
    for (let attempt = 0; probing() < workers + 1; attempt++) {
      if (attempt === 300) throw new Error(`${variant}: ${workers} workers did not all start`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  return server
}

/** CPU ticks (USER_HZ) a process has used, with those of its children it has reaped; 0 once it is gone. */
function ticks (pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // utime, stime, cutime, cstime: fields 14 to 17 of proc(5), 12 to 15 after the name.
    return Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])
  } catch {
    return 0
  }
}

/**
 * The machine's busy CPU ticks (/proc/stat), and those of this benchmark: itself, the children it has reaped (each
 * step's generator and sink) and every live process below it (the servers, a group's workers, redis-server). Their
 * difference over a step is what other processes on the machine took: a shared VM's neighbours.
 */
function cpuTicks (): { busy: number, ours: number } | null {
  try {
    const [, ...counts] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number)
    // user nice system idle iowait irq softirq steal: busy is user, nice, system and steal (a neighbouring VM's). Not
    // irq and softirq, which no process is charged with: here mostly the loopback traffic the benchmark itself makes.
    const busy = counts[0] + counts[1] + counts[2] + counts[7]
    const parents = new Map<number, number[]>()
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
        parents.set(ppid, [...(parents.get(ppid) ?? []), Number(name)])
      } catch {
        // gone meanwhile
      }
    }
    let ours = 0
    const walk = (pid: number): void => {
      ours += ticks(pid)
      for (const child of parents.get(pid) ?? []) walk(child)
    }
    walk(process.pid)
    return { busy, ours }
  } catch {
    return null
  }
}

/** redis-server's CPU seconds (user + sys) and used_memory, from INFO. */
async function redisInfo (admin: Redis): Promise<{ cpu_s: number, used_memory: number }> {
  const info = await admin.info()
  const field = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN)
  return { cpu_s: field('used_cpu_user') + field('used_cpu_sys'), used_memory: field('used_memory') }
}

/** The Redis memory a Streams step's audio streams hold: every key of its calls, measured exactly (SAMPLES 0). */
async function streamMemory (admin: Redis, callPrefix: string, variant: Variant, usedMemoryDelta: number): Promise<StreamMemory> {
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, found] = await admin.scan(cursor, 'MATCH', `bench:audio:*${callPrefix}-*`, 'COUNT', 1000)
    keys.push(...found)
    cursor = next
  } while (cursor !== '0')
  const pipeline = admin.pipeline()
  for (const key of keys) pipeline.xlen(key).memory('USAGE', key, 'SAMPLES', 0)
  const replies = (await pipeline.exec()) ?? []
  let entries = 0
  let bytes = 0
  replies.forEach(([error, value], index) => {
    if (error !== null) throw error
    if (index % 2 === 0) entries += Number(value)
    else bytes += Number(value ?? 0)
  })
  const maxlen = Number(parseVariant(variant).env.REDIS_STREAM_MAXLEN ?? 15000)
  const perEntry = entries === 0 ? 0 : bytes / entries
  return {
    keys: keys.length,
    entries,
    bytes,
    bytes_per_entry: perEntry,
    bytes_per_call_minute: perEntry * (60_000 / FRAME_MS),
    maxlen,
    plateau_bytes_per_call: perEntry * maxlen,
    used_memory_delta: usedMemoryDelta
  }
}

/** `+watch`: reads the gateway's dashboard feed until aborted, as an open browser tab would; what it cost the gateway is in the step's CPU. */
function watchDashboard (port: number, signal: AbortSignal): void {
  fetch(`http://127.0.0.1:${port}/dashboard/feed`, { signal }).then(async (response) => {
    if (!response.ok || response.body === null) throw new Error(`the dashboard feed answered ${response.status}`)
    // Read and let go: the feed's cost is the gateway's, not this reader's.
    const reader = response.body.getReader()
    while (!(await reader.read()).done);
  }).catch((err: Error) => { if (!signal.aborted) process.stderr.write(`+watch: ${err.message}\n`) })
}

async function step (variant: Variant, calls: number, port: number, redisUrl: string, probeFile: string): Promise<StepResult> {
  const { transport, watch } = parseVariant(variant)
  const watching = new AbortController()
  if (watch) watchDashboard(port, watching.signal)
  const admin = new Redis(redisUrl)
  const before = await redisInfo(admin)
  const startedAt = performance.now()
  const ticksBefore = cpuTicks()
  const sink = start('0', ['--import', 'tsx', 'bench/latency-sink.ts'], { REDIS_URL: redisUrl, REDIS_PREFIX: 'bench:', BENCH_TRANSPORT: transport, BENCH_SLOW_MS: process.env.BENCH_SLOW_MS ?? '0' })
  await firstLine(sink, (line) => line === 'ready')
  const probeStart = readProbe(probeFile).length
  const callPrefix = `${variant.replace(/\W/g, '_')}-${calls}-${Date.now()}`
  const load = start('0', ['--import', 'tsx', 'bench/load-generator.ts', JSON.stringify({
    url: `ws://127.0.0.1:${port}/v1/ingest`, calls, sampleRate: SAMPLE_RATE, frameMs: FRAME_MS, seconds: SECONDS + WARMUP_SECONDS, mode: 'random', callPrefix
  })], {})
  const client = JSON.parse(await firstLine(load, (line) => line.startsWith('{'))) as { frames_sent: number, lateness_p99_ms: number, client_cpu_pct: number, connect_failures: number }
  await once(load, 'exit')
  watching.abort()
  await new Promise((resolve) => setTimeout(resolve, 1500)) // frames still in flight reach the sink
  const sinkExited = once(sink, 'exit')
  sink.kill('SIGTERM')
  const received = JSON.parse(await firstLine(sink, (line) => line.startsWith('{'))) as Omit<StepResult, 'variant'> & { cpu_us: number, reads: number, entries_read: number }
  if (transport === 'streams') process.stderr.write(`sink: ${received.reads} XREADs, ${(received.entries_read / Math.max(1, received.reads)).toFixed(1)} entries each\n`)
  await sinkExited
  const after = await redisInfo(admin)
  const ticksAfter = cpuTicks()
  const stepSeconds = (performance.now() - startedAt) / 1000
  // USER_HZ is 100 on Linux: a tick is 10 ms, so ticks per second are percent of one CPU.
  const othersCpuPct = ticksBefore === null || ticksAfter === null
    ? 0
    : Math.max(0, (ticksAfter.busy - ticksBefore.busy) - (ticksAfter.ours - ticksBefore.ours)) / stepSeconds
  const streams = transport === 'streams' ? await streamMemory(admin, callPrefix, variant, after.used_memory - before.used_memory) : null
  admin.disconnect()
  // The window: probe lines written while this step's load ran, less the warm-up and ramp; per process, as each
  // server process (the primary and each worker with WORKERS > 1) writes its own.
  const byPid = new Map<number, ProbeLine[]>()
  for (const line of readProbe(probeFile).slice(probeStart)) byPid.set(line.pid, [...(byPid.get(line.pid) ?? []), line])
  const windows = [...byPid.values()].map((lines) => {
    const probes = lines.slice(WARMUP_SECONDS + Math.ceil(calls / 200))
    return probes.length >= 2 ? probes : lines
  }).filter((lines) => lines.length >= 2)
  const window = windows.flat()
  const seconds = Math.max(1, Math.max(...windows.map((lines) => (lines.at(-1)!.t - lines[0].t) / 1000)))
  // CPU per second of each process's own window, summed over the processes.
  const cpuUsPerSecond = windows.reduce((sum, lines) => sum + (lines.at(-1)!.cpu_us - lines[0].cpu_us) / Math.max(1, (lines.at(-1)!.t - lines[0].t) / 1000), 0)
  const framesPerSecond = (calls * 1000) / FRAME_MS
  const sumOfMaxima = (pick: (line: ProbeLine) => number): number => windows.reduce((sum, lines) => sum + Math.max(...lines.map(pick)), 0)
  // Node's timers have 1 ms granularity, which alone puts an idle generator's p99 near 2 ms, so 5 ms is the line
  // here. Latency is measured from the intended time either way.
  // Also invalid: other processes on the machine took more than a fifth of a CPU during the step.
  const valid = client.lateness_p99_ms <= 5 && client.client_cpu_pct <= 70 && client.connect_failures === 0 && othersCpuPct <= 20
  const lost = client.frames_sent - received.received
  const p99 = received.p99_ms
  return {
    variant,
    calls,
    frames_sent: client.frames_sent,
    received: received.received,
    lost,
    duplicates: received.duplicates,
    reordered: received.reordered,
    p50_ms: received.p50_ms,
    p99_ms: p99,
    p999_ms: received.p999_ms,
    max_ms: received.max_ms,
    server_cpu_pct: cpuUsPerSecond / 1e4,
    cpu_us_per_frame: cpuUsPerSecond / framesPerSecond,
    eld_p99_ms: Math.max(...window.map((line) => line.eld_p99_ms)),
    eld_max_ms: Math.max(...window.map((line) => line.eld_max_ms)),
    // Summed over the processes: GC time per second of each one's own window, and each one's largest heap and RSS.
    gc_ms_per_s: windows.reduce((sum, lines) => sum + lines.slice(1).reduce((ms, line) => ms + line.gc.scavenge_ms + line.gc.major_ms, 0), 0) / seconds,
    gc_max_ms: Math.max(...windows.flatMap((lines) => lines.slice(1).map((line) => line.gc.max_ms))),
    rss_mb: sumOfMaxima((line) => line.rss) / 2 ** 20,
    heap_mb: sumOfMaxima((line) => line.heap_used) / 2 ** 20,
    client_lateness_p99_ms: client.lateness_p99_ms,
    client_cpu_pct: client.client_cpu_pct,
    sink_cpu_pct: received.cpu_us / 1e4 / stepSeconds,
    redis_cpu_pct: ((after.cpu_s - before.cpu_s) * 100) / stepSeconds,
    redis_us_per_frame: ((after.cpu_s - before.cpu_s) * 1e6) / Math.max(1, client.frames_sent),
    processes: windows.length,
    others_cpu_pct: othersCpuPct,
    streams,
    valid,
    pass: valid && lost === 0 && p99 < 20 && received.p999_ms < 50
  }
}

interface ProbeLine {
  pid: number
  t: number
  eld_p99_ms: number
  eld_max_ms: number
  elu: number
  cpu_us: number
  rss: number
  heap_used: number
  gc: { scavenge_ms: number, major_ms: number, max_ms: number, count: number }
}

function readProbe (file: string): ProbeLine[] {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').filter((line) => line !== '').map((line) => JSON.parse(line))
  } catch {
    return []
  }
}

async function measure (variant: Variant, loads: number[], redisUrl: string): Promise<StepResult[]> {
  const port = await freePort()
  const probeFile = join(tmpdir(), `rtaa-probe-${process.pid}-${variant.replace(/\W/g, '_')}-${Date.now()}.jsonl`)
  const server = await startServer(variant, port, redisUrl, probeFile)
  const results: StepResult[] = []
  try {
    for (const calls of loads) {
      let result = await step(variant, calls, port, redisUrl, probeFile)
      // A step other processes took CPU from measured them too: run it again, up to BENCH_NOISY_RETRIES times.
      for (let retry = 1; result.others_cpu_pct > 20 && retry <= NOISY_RETRIES; retry++) {
        process.stderr.write(`${variant} ${calls} calls: other processes took ${result.others_cpu_pct.toFixed(0)} % of a CPU; again (${retry} of ${NOISY_RETRIES})\n`)
        result = await step(variant, calls, port, redisUrl, probeFile)
      }
      results.push(result)
      process.stderr.write(`${variant} ${calls} calls: p99 ${result.p99_ms.toFixed(2)} ms, lost ${result.lost}, ${result.cpu_us_per_frame.toFixed(1)} µs/frame, cpu ${result.server_cpu_pct.toFixed(0)} % (${result.processes} process(es)), client lateness p99 ${result.client_lateness_p99_ms.toFixed(2)} ms, client/sink/redis/others' cpu ${result.client_cpu_pct.toFixed(0)}/${result.sink_cpu_pct.toFixed(0)}/${result.redis_cpu_pct.toFixed(0)}/${result.others_cpu_pct.toFixed(0)} %${result.streams === null ? '' : `, streams ${(result.streams.bytes_per_call_minute / 2 ** 20).toFixed(2)} MiB per call-minute`}${result.valid ? '' : ` (INVALID: ${result.others_cpu_pct > 20 ? 'other processes took CPU' : 'the client fell behind'})`}\n`)
      if (mode === 'full' && !result.pass) break
    }
  } finally {
    const exited = once(server, 'exit')
    server.kill('SIGTERM')
    // A primary of WORKERS > 1 drains its workers first; one that hangs is killed (its workers follow it, bench/probe.mjs).
    const timer = setTimeout(() => server.kill('SIGKILL'), 20_000)
    await exited
    clearTimeout(timer)
    rmSync(probeFile, { force: true })
  }
  return results
}

/** Full mode: steps until a failure, then bisection between the last pass and the first failure, to ±25 calls. */
async function search (variant: Variant, redisUrl: string): Promise<StepResult[]> {
  const steps = [50, 100, 200, 300, 400, 500, 600, 700, 800, 1000, 1200].map((calls) => calls * CALLS_SCALE)
  const results = await measure(variant, steps, redisUrl)
  const failed = results.find((result) => !result.pass)
  if (failed === undefined) return results
  let low = results.filter((result) => result.pass).at(-1)?.calls ?? 0
  let high = failed.calls
  while (high - low > 25 * CALLS_SCALE) {
    const mid = Math.round((low + high) / 2)
    const [result] = await measure(variant, [mid], redisUrl)
    results.push(result)
    if (result.pass) low = mid
    else high = mid
  }
  return results
}

const maxPassing = (results: StepResult[]): number => Math.max(0, ...results.filter((result) => result.pass).map((result) => result.calls))
/** A variant searched twice (ABBA) has two capacities; the figure is their mean. */
function capacity (runs: StepResult[][]): number {
  return runs.length === 0 ? 0 : runs.reduce((sum, run) => sum + maxPassing(run), 0) / runs.length
}
/** A variant run twice (ABBA) gives two steps at one load; the figure is their mean. */
function cpuAt (results: StepResult[], calls: number): number | null {
  const matching = results.filter((result) => result.calls === calls)
  return matching.length === 0 ? null : matching.reduce((sum, result) => sum + result.cpu_us_per_frame, 0) / matching.length
}

const redis = await TestRedis.start()
// On SIGINT, SIGTERM or SIGHUP every child is killed first (bench/children.ts), then these.
onStop(() => redis.stop())
onStop(removeWorktrees)
try {
  // redis-server shares CPU 0 with the load generator and the sink, every thread of it (-a), so that CPU 1 is the
  // server's alone.
  if (taskset) {
    const admin = new Redis(redis.url)
    const pid = /^process_id:(\d+)/m.exec(await admin.info('server'))?.[1]
    admin.disconnect()
    if (pid !== undefined) spawnSync('taskset', ['-a', '-p', '-c', '0', pid], { stdio: 'ignore' })
  }
  // Smoke also runs the gateway in Streams mode, so CI proves the XREAD sink as well.
  const order = process.env.BENCH_VARIANTS?.split(',') ?? (mode === 'full' ? ['baseline', 'gateway', 'gateway', 'baseline'] : mode === 'smoke' ? ['baseline', 'gateway', 'gateway+streams'] : ['baseline', 'gateway'])
  for (const variant of order) parseVariant(variant)
  const loads = process.env.BENCH_LOADS?.split(',').map(Number) ?? (mode === 'smoke' ? [20] : [100, 200, 400].map((calls) => calls * CALLS_SCALE))
  const runs: StepResult[][] = []
  for (const variant of order) runs.push(mode === 'full' ? await search(variant, redis.url) : await measure(variant, loads, redis.url))
  const all = runs.flat()
  const variants = [...new Set(order)]
  const by = (variant: Variant): StepResult[] => all.filter((result) => result.variant === variant)
  const capacityOf = (variant: Variant): number => capacity(runs.filter((run) => run[0]?.variant === variant))
  // CPU per frame is compared at 200 calls (scaled), or at the largest load below it that every variant ran.
  const ranByAll = [...new Set(all.map((result) => result.calls))].filter((calls) => variants.every((variant) => by(variant).some((result) => result.calls === calls)))
  const reference = mode === 'smoke' ? 20 : Math.max(0, ...ranByAll.filter((calls) => calls <= 200 * CALLS_SCALE))
  const [first, second] = variants
  // Each variant as a fraction of the floor's (bench/floor-server.ts), when one ran: capacity ÷ the floor's, and the
  // floor's CPU per frame ÷ the variant's, so 1.0 is as fast, and as cheap, as moving the bytes.
  const floor = variants.find((variant) => parseVariant(variant).server === 'floor')
  const fraction = (part: number | null, whole: number | null): number | null => part === null || whole === null || whole === 0 ? null : part / whole
  const fractionOfFloor = floor === undefined
    ? null
    : {
        floor,
        max_calls_per_core: Object.fromEntries(variants.map((variant) => [variant, fraction(capacityOf(variant), capacityOf(floor))])),
        cpu_us_per_frame: Object.fromEntries(variants.map((variant) => [variant, fraction(cpuAt(by(floor), reference), cpuAt(by(variant), reference))]))
      }
  // Where the harness stops being valid (the generator fell behind, a call failed to connect, or others took CPU):
  // the largest load at which every step was, and the smallest at which one was not.
  const stepLoads = [...new Set(all.map((result) => result.calls))].sort((a, b) => a - b)
  const validLoads = stepLoads.filter((calls) => all.every((result) => result.calls !== calls || result.valid))
  const harnessValidUpTo = validLoads.at(-1) ?? null
  const harnessInvalidFrom = stepLoads.find((calls) => !validLoads.includes(calls)) ?? null
  const headline = {
    max_calls_per_core: Object.fromEntries(variants.map((variant) => [variant, capacityOf(variant)])),
    // The second variant against the first: gateway ÷ baseline, or after ÷ before.
    ratio: second === undefined || capacityOf(first) === 0 ? null : capacityOf(second) / capacityOf(first),
    cpu_us_per_frame_at: reference,
    cpu_us_per_frame: Object.fromEntries(variants.map((variant) => [variant, cpuAt(by(variant), reference)])),
    fraction_of_floor: fractionOfFloor,
    harness_valid_up_to: harnessValidUpTo,
    harness_invalid_from: harnessInvalidFrom,
    // Streams variants: Redis bytes per call-minute of audio (mean over their steps), and a call's stream at MAXLEN.
    redis_stream_bytes_per_call_minute: Object.fromEntries(variants.filter((variant) => by(variant).some((r) => r.streams !== null)).map((variant) => {
      const measured = by(variant).flatMap((r) => r.streams === null || r.streams.entries === 0 ? [] : [r.streams])
      const mean = (pick: (m: StreamMemory) => number): number => Math.round(measured.reduce((sum, m) => sum + pick(m), 0) / Math.max(1, measured.length))
      return [variant, { per_call_minute: mean((m) => m.bytes_per_call_minute), per_entry: mean((m) => m.bytes_per_entry), plateau_per_call: mean((m) => m.plateau_bytes_per_call) }]
    }))
  }
  const report = {
    mode,
    date: new Date().toISOString(),
    node: process.version,
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    taskset,
    format: { sample_rate: SAMPLE_RATE, frame_ms: FRAME_MS, seconds_per_step: SECONDS },
    headline,
    steps: all
  }
  const table = ['| variant | calls | p50 ms | p99 ms | p99.9 ms | lost | server CPU % | CPU µs/frame | ELD p99 / max ms | GC ms/s, max ms | heap / RSS MB | client / sink / redis CPU % | redis µs/frame | client lateness p99 ms | others CPU % | valid |', '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    .concat(all.map((r) => `| ${r.variant} | ${r.calls} | ${r.p50_ms.toFixed(2)} | ${r.p99_ms.toFixed(2)} | ${r.p999_ms.toFixed(2)} | ${r.lost} | ${r.server_cpu_pct.toFixed(0)} | ${r.cpu_us_per_frame.toFixed(1)} | ${r.eld_p99_ms.toFixed(1)} / ${r.eld_max_ms.toFixed(1)} | ${r.gc_ms_per_s.toFixed(1)}, ${r.gc_max_ms.toFixed(1)} | ${r.heap_mb.toFixed(0)} / ${r.rss_mb.toFixed(0)} | ${r.client_cpu_pct.toFixed(0)} / ${r.sink_cpu_pct.toFixed(0)} / ${r.redis_cpu_pct.toFixed(0)} | ${r.redis_us_per_frame.toFixed(1)} | ${r.client_lateness_p99_ms.toFixed(2)} | ${r.others_cpu_pct.toFixed(0)} | ${r.valid ? 'yes' : 'no'} |`))
    .concat(all.some((r) => r.streams !== null)
      ? ['', '| variant | calls | audio streams | entries | MEMORY USAGE MiB | bytes/entry | MiB per call-minute | MAXLEN | MiB per call at MAXLEN | used_memory Δ MiB |', '|---|---|---|---|---|---|---|---|---|---|']
          .concat(all.flatMap((r) => r.streams === null
            ? []
            : [`| ${r.variant} | ${r.calls} | ${r.streams.keys} | ${r.streams.entries} | ${(r.streams.bytes / 2 ** 20).toFixed(1)} | ${r.streams.bytes_per_entry.toFixed(0)} | ${(r.streams.bytes_per_call_minute / 2 ** 20).toFixed(2)} | ${r.streams.maxlen} | ${(r.streams.plateau_bytes_per_call / 2 ** 20).toFixed(1)} | ${(r.streams.used_memory_delta / 2 ** 20).toFixed(1)} |`]))
      : [])
    .concat(fractionOfFloor === null
      ? []
      : ['', `| variant | max calls per core | ÷ floor | CPU µs/frame at ${reference} calls | floor's ÷ this |`, '|---|---|---|---|---|']
          .concat(variants.map((variant) => {
            const cpu = cpuAt(by(variant), reference)
            const show = (value: number | null, digits: number): string => value === null ? '–' : value.toFixed(digits)
            return `| ${variant} | ${capacityOf(variant)} | ${show(fractionOfFloor.max_calls_per_core[variant], 2)} | ${show(cpu, 1)} | ${show(fractionOfFloor.cpu_us_per_frame[variant], 2)} |`
          })))
    .join('\n')
  if (mode !== 'smoke') {
    mkdirSync(join(root, 'bench', 'results'), { recursive: true })
    const stem = join(root, 'bench', 'results', `${report.date.slice(0, 19).replace(/:/g, '-')}-${mode}`)
    writeFileSync(`${stem}.json`, `${JSON.stringify(report, null, 2)}\n`)
    writeFileSync(`${stem}.md`, `${table}\n`)
  }
  const validity = harnessInvalidFrom === null
    ? `harness: every step valid (up to ${harnessValidUpTo ?? 0} calls)`
    : `harness: ${harnessValidUpTo === null ? 'no load with every step valid' : `every step valid up to ${harnessValidUpTo} calls`}, invalid from ${harnessInvalidFrom} calls${harnessValidUpTo !== null && harnessValidUpTo > harnessInvalidFrom ? ' (not at every load between: see the steps)' : ''}`
  process.stdout.write(`${table}\n\n${validity}\n\n${JSON.stringify(headline, null, 2)}\n`)
  if (all.some((result) => result.received === 0)) {
    process.stderr.write('bench: a step received no frames at all; the harness is broken\n')
    process.exitCode = 1
  }
} finally {
  removeWorktrees()
  await redis.stop()
}
