/**
 * Runs the baseline and the gateway side by side in one run (docs/benchmarks.md, "The harness"): each server
 * pinned to CPU 1 with taskset where available, the load generator, the latency sink and redis-server on CPU 0.
 *
 *   npm run bench          full: steps until p99 ≥ 20 ms or loss, then bisection; ABBA order; results JSON + table
 *   npm run bench:quick    fixed loads, AB order, about 3 minutes
 *   npm run bench:smoke    one small step each, ~20 s: proves the harness runs (CI); asserts no speed
 *
 * BENCH_VARIANTS lists the servers in run order, e.g. `gateway@HEAD~1,gateway,gateway,gateway@HEAD~1`: a variant
 * `gateway@<git ref>` runs that commit's gateway from a temporary worktree, so one change's before and after are
 * measured side by side, in ABBA order, in one run. BENCH_LOADS fixes the loads (calls). BENCH_CPU_PROF=1 profiles
 * each server run (`npx tsx bench/profile-summary.ts <file>` summarises one).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { TestRedis, freePort } from '../test/helpers/redis-server.js'
import { Collected } from '../test/helpers/waiter.js'
import { onStop, track } from './children.js'
import { removeWorktrees, root, serverCommand, untilReady, type Variant } from './servers.js'

type Mode = 'full' | 'quick' | 'smoke'

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
const taskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0 && cpus().length >= 2

function pinned (cpu: number, command: string, args: string[]): [string, string[]] {
  return taskset ? ['taskset', ['-c', String(cpu), command, ...args]] : [command, args]
}

function start (cpu: number, args: string[], env: Record<string, string>, cwd = root): ChildProcess {
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
  // BENCH_CPU_PROF=1: each server writes V8 CPU profiles on exit, one per thread (the main thread's is the largest),
  // to a directory per run; bench/profile-summary.ts reads one.
  const profile = process.env.BENCH_CPU_PROF === '1'
    ? ['--cpu-prof', `--cpu-prof-dir=${join(root, 'bench', 'results', 'profiles', `${variant.replace(/\W/g, '_')}-${Date.now()}`)}`]
    : []
  // BENCH_NODE_FLAGS (e.g. --max-semi-space-size=64) go to every server alike, to compare runtime settings.
  const flags = process.env.BENCH_NODE_FLAGS?.split(' ').filter((flag) => flag !== '') ?? []
  const command = await serverCommand(variant, port, redisUrl, [...flags, ...profile, '--import', join(root, 'bench', 'probe.mjs')])
  const server = start(1, command.args, { ...command.env, PROBE_FILE: probeFile }, command.cwd)
  if (command.readyLine !== undefined) await firstLine(server, (line) => line === command.readyLine)
  else await untilReady(port)
  return server
}

async function step (variant: Variant, calls: number, port: number, redisUrl: string, probeFile: string): Promise<StepResult> {
  const sink = start(0, ['--import', 'tsx', 'bench/latency-sink.ts'], { REDIS_URL: redisUrl, REDIS_PREFIX: 'bench:' })
  await firstLine(sink, (line) => line === 'ready')
  const probeStart = readProbe(probeFile).length
  const load = start(0, ['--import', 'tsx', 'bench/load-generator.ts', JSON.stringify({
    url: `ws://127.0.0.1:${port}/v1/ingest`, calls, sampleRate: SAMPLE_RATE, frameMs: FRAME_MS, seconds: SECONDS + WARMUP_SECONDS, mode: 'random', callPrefix: `${variant.replace(/\W/g, '_')}-${calls}-${Date.now()}`
  })], {})
  const client = JSON.parse(await firstLine(load, (line) => line.startsWith('{'))) as { frames_sent: number, lateness_p99_ms: number, client_cpu_pct: number, connect_failures: number }
  await once(load, 'exit')
  await new Promise((resolve) => setTimeout(resolve, 1500)) // frames still in flight reach the sink
  sink.kill('SIGTERM')
  const received = JSON.parse(await firstLine(sink, (line) => line.startsWith('{'))) as Omit<StepResult, 'variant'>
  // The window: probe lines written while this step's load ran, less the warm-up and ramp.
  const probes = readProbe(probeFile).slice(probeStart).slice(WARMUP_SECONDS + Math.ceil(calls / 200))
  const window = probes.length >= 2 ? probes : readProbe(probeFile).slice(probeStart)
  const seconds = Math.max(1, (window.at(-1)!.t - window[0].t) / 1000)
  const cpuUs = window.at(-1)!.cpu_us - window[0].cpu_us
  const framesPerSecond = (calls * 1000) / FRAME_MS
  // Node's timers have 1 ms granularity, which alone puts an idle generator's p99 near 2 ms, so 5 ms is the line
  // here. Latency is measured from the intended time either way.
  const valid = client.lateness_p99_ms <= 5 && client.client_cpu_pct <= 70 && client.connect_failures === 0
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
    server_cpu_pct: (cpuUs / 1e4) / seconds,
    cpu_us_per_frame: cpuUs / (framesPerSecond * seconds),
    eld_p99_ms: Math.max(...window.map((line) => line.eld_p99_ms)),
    eld_max_ms: Math.max(...window.map((line) => line.eld_max_ms)),
    gc_ms_per_s: window.slice(1).reduce((sum, line) => sum + line.gc.scavenge_ms + line.gc.major_ms, 0) / seconds,
    gc_max_ms: Math.max(...window.slice(1).map((line) => line.gc.max_ms)),
    rss_mb: Math.max(...window.map((line) => line.rss)) / 2 ** 20,
    heap_mb: Math.max(...window.map((line) => line.heap_used)) / 2 ** 20,
    client_lateness_p99_ms: client.lateness_p99_ms,
    client_cpu_pct: client.client_cpu_pct,
    valid,
    pass: valid && lost === 0 && p99 < 20 && received.p999_ms < 50
  }
}

interface ProbeLine {
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
  const probeFile = join(tmpdir(), `rtaa-probe-${process.pid}-${variant}-${Date.now()}.jsonl`)
  const server = await startServer(variant, port, redisUrl, probeFile)
  const results: StepResult[] = []
  try {
    for (const calls of loads) {
      const result = await step(variant, calls, port, redisUrl, probeFile)
      results.push(result)
      process.stderr.write(`${variant} ${calls} calls: p99 ${result.p99_ms.toFixed(2)} ms, lost ${result.lost}, ${result.cpu_us_per_frame.toFixed(1)} µs/frame, cpu ${result.server_cpu_pct.toFixed(0)} %, client lateness p99 ${result.client_lateness_p99_ms.toFixed(2)} ms, client cpu ${result.client_cpu_pct.toFixed(0)} %${result.valid ? '' : ' (INVALID: the client fell behind)'}\n`)
      if (mode === 'full' && !result.pass) break
    }
  } finally {
    server.kill('SIGTERM')
    await once(server, 'exit')
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
  const order = process.env.BENCH_VARIANTS?.split(',') ?? (mode === 'full' ? ['baseline', 'gateway', 'gateway', 'baseline'] : ['baseline', 'gateway'])
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
  const headline = {
    max_calls_per_core: Object.fromEntries(variants.map((variant) => [variant, capacityOf(variant)])),
    // The second variant against the first: gateway ÷ baseline, or after ÷ before.
    ratio: second === undefined || capacityOf(first) === 0 ? null : capacityOf(second) / capacityOf(first),
    cpu_us_per_frame_at: reference,
    cpu_us_per_frame: Object.fromEntries(variants.map((variant) => [variant, cpuAt(by(variant), reference)]))
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
  const table = ['| variant | calls | p50 ms | p99 ms | p99.9 ms | lost | server CPU % | CPU µs/frame | ELD p99 / max ms | GC ms/s, max ms | heap / RSS MB | valid |', '|---|---|---|---|---|---|---|---|---|---|---|---|']
    .concat(all.map((r) => `| ${r.variant} | ${r.calls} | ${r.p50_ms.toFixed(2)} | ${r.p99_ms.toFixed(2)} | ${r.p999_ms.toFixed(2)} | ${r.lost} | ${r.server_cpu_pct.toFixed(0)} | ${r.cpu_us_per_frame.toFixed(1)} | ${r.eld_p99_ms.toFixed(1)} / ${r.eld_max_ms.toFixed(1)} | ${r.gc_ms_per_s.toFixed(1)}, ${r.gc_max_ms.toFixed(1)} | ${r.heap_mb.toFixed(0)} / ${r.rss_mb.toFixed(0)} | ${r.valid ? 'yes' : 'no'} |`))
    .join('\n')
  if (mode !== 'smoke') {
    mkdirSync(join(root, 'bench', 'results'), { recursive: true })
    const stem = join(root, 'bench', 'results', `${report.date.slice(0, 19).replace(/:/g, '-')}-${mode}`)
    writeFileSync(`${stem}.json`, `${JSON.stringify(report, null, 2)}\n`)
    writeFileSync(`${stem}.md`, `${table}\n`)
  }
  process.stdout.write(`${table}\n\n${JSON.stringify(headline, null, 2)}\n`)
  if (all.some((result) => result.received === 0)) {
    process.stderr.write('bench: a step received no frames at all; the harness is broken\n')
    process.exitCode = 1
  }
} finally {
  removeWorktrees()
  await redis.stop()
}
