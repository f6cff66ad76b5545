/**
 * CPU instructions per frame, counted by valgrind's callgrind: repeatable where seconds are not (a shared VM's
 * timing drifts 15-20 % between runs), so it measures one change's before and after. Each variant's server runs
 * under callgrind; a closed-loop driver warms it up, an idle window measures what it runs by the clock, the counters
 * are zeroed, exactly ROUNDS × CALLS frames go through (each round waits until Redis has delivered every frame of
 * it), and the counters are dumped.
 *
 *   npm run bench:instructions                                   baseline and gateway, checked against the budget
 *   BENCH_VARIANTS=gateway@HEAD~1,gateway npm run bench:instructions    a change's before and after
 *   BENCH_VARIANTS=floor,baseline,gateway npm run bench:instructions     each against the floor (bench/floor-server.ts)
 *
 * The count is the server process's, every thread, including Redis I/O and GC, less its idle rate times the window's
 * duration (timers run by the clock, and under callgrind a window lasts longer on a slower machine); not the
 * client's. A window
 * that a major GC falls into counts several percent more, so each server is counted over WINDOWS windows of ROUNDS
 * rounds and the least is its figure.
 *
 * The regression guard (.ci/run): when baseline and gateway both ran, the gateway's instructions per frame over the
 * baseline's must not pass `gateway_per_baseline` in bench/instructions-budget.json, or the run fails.
 */
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import WebSocket from 'ws'
import { TestRedis, freePort } from '../test/helpers/redis-server.js'
import { mediaMessage, openingMessages } from './exotel-frames.js'
import { onStop, track } from './children.js'
import { parseVariant, removeWorktrees, root, serverCommand, untilReady, type Variant } from './servers.js'

const CALLS = Number(process.env.BENCH_CALLS ?? 20)
const WARMUP_ROUNDS = Number(process.env.BENCH_WARMUP_ROUNDS ?? 300)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 250)
const WINDOWS = Number(process.env.BENCH_WINDOWS ?? 3)
/** How long the idle window lasts, in which no frame comes. */
const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 5000)
const SAMPLE_RATE = Number(process.env.BENCH_SAMPLE_RATE ?? 16000)
const FRAME_MS = Number(process.env.BENCH_FRAME_MS ?? 20)
const payload = Buffer.alloc((SAMPLE_RATE * 2 * FRAME_MS) / 1000, 0x11).toString('base64')

if (spawnSync('valgrind', ['--version']).status !== 0) throw new Error('bench:instructions needs valgrind (apt-get install valgrind)')

async function count (variant: Variant, redisUrl: string): Promise<{ variant: Variant, instructions_per_frame: number, frames: number }> {
  // Its driver counts deliveries on pub/sub; a Streams variant's frames would never arrive there.
  if (parseVariant(variant).transport === 'streams') throw new Error(`${variant}: bench:instructions counts pub/sub variants only`)
  const port = await freePort()
  // BENCH_CALLGRIND_DIR keeps each server's callgrind output there, for callgrind_annotate.
  const keep = process.env.BENCH_CALLGRIND_DIR
  const out = keep === undefined ? mkdtempSync(join(tmpdir(), 'rtaa-callgrind-')) : mkdtempSync(join(keep, `${variant.replace(/\W/g, '_')}-`))
  // One thread for V8's compiler and GC, so their work is not spread by timing across runs.
  const command = await serverCommand(variant, port, redisUrl, ['--single-threaded'])
  // Tracked: killed with the benchmark, on exit or a signal (bench/children.ts); valgrind runs node in its own process.
  const server = track(spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${join(out, 'callgrind.out')}`, process.execPath, ...command.args],
    { cwd: command.cwd, env: command.env, stdio: ['ignore', 'pipe', 'pipe'] }))
  // vgdb, which callgrind_control talks through, names its pipes after USER and HOST (the gateway's HOST, here):
  // the control side must see the server's environment.
  const control = (flag: string): void => {
    const result = spawnSync('callgrind_control', [flag, String(server.pid)], { encoding: 'utf8', env: command.env })
    if (result.status !== 0 || result.stderr.includes('error')) throw new Error(`callgrind_control ${flag} failed: ${result.stderr}`)
  }
  const sink = new Redis(redisUrl)
  let received = 0
  const waiting: Array<{ until: number, resolve: () => void }> = []
  sink.on('pmessageBuffer', () => {
    received++
    while (waiting.length > 0 && received >= waiting[0].until) waiting.shift()!.resolve()
  })
  try {
    await sink.psubscribe('bench:audio:*')
    if (command.readyLine !== undefined) {
      let lines = ''
      server.stdout.on('data', (chunk: Buffer) => { lines += chunk.toString() })
      await untilLine(() => lines.includes(command.readyLine!))
    } else {
      await untilReady(port, 3000)
    }
    const sockets = await Promise.all(Array.from({ length: CALLS }, (_, index) => connect(port, variant, index)))
    let sequence = 0
    const rounds = async (n: number): Promise<void> => {
      for (let round = 0; round < n; round++) {
        const delivered = new Promise<void>((resolve) => waiting.push({ until: received + CALLS, resolve }))
        sockets.forEach((ws, index) => ws.send(mediaMessage(`MZ${index}`, sequence, FRAME_MS, payload)))
        sequence++
        await delivered
      }
    }
    await rounds(WARMUP_ROUNDS)
    // What the server runs while no frame comes (its timers: keepalive sweeps, the event-loop monitor, metrics), per
    // second. Under callgrind a window lasts many seconds, and longer on a slower machine: without this, a slower day
    // counts more instructions per frame for the same code, and more for the server with more timers.
    control('-z')
    const idleStarted = performance.now()
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS))
    control('-d')
    const idlePerMs = await dumped(out, 1) / (performance.now() - idleStarted)
    const windows: number[] = []
    for (let window = 1; window <= WINDOWS; window++) {
      control('-z')
      const started = performance.now()
      await rounds(ROUNDS)
      control('-d')
      const elapsed = performance.now() - started
      windows.push((await dumped(out, window + 1) - idlePerMs * elapsed) / (ROUNDS * CALLS))
    }
    for (const ws of sockets) ws.close()
    process.stderr.write(`${variant}: idle ${Math.round(idlePerMs * 1000)} instructions per second; ${windows.map(Math.round).join(', ')} instructions per frame, less the idle's, in its ${WINDOWS} windows\n`)
    return { variant, instructions_per_frame: Math.min(...windows), frames: ROUNDS * CALLS }
  } finally {
    if (server.exitCode === null && server.signalCode === null) {
      server.kill('SIGKILL')
      await once(server, 'exit')
    }
    sink.disconnect()
    if (keep === undefined) rmSync(out, { recursive: true, force: true })
  }
}

/** callgrind_control returns once the dump is requested; dump n lands as callgrind.out.<n> when callgrind next looks. */
async function dumped (out: string, n: number): Promise<number> {
  const file = join(out, `callgrind.out.${n}`)
  for (let attempt = 0; attempt < 600; attempt++) {
    let text = ''
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      // not there yet
    }
    const total = /^(?:summary|totals): (\d+)/m.exec(text)
    if (total !== null) return Number(total[1])
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`no callgrind dump in ${out}: ${readdirSync(out).join(', ')}`)
}

async function untilLine (seen: () => boolean): Promise<void> {
  for (let attempt = 0; attempt < 3000 && !seen(); attempt++) await new Promise((resolve) => setTimeout(resolve, 100))
  if (!seen()) throw new Error('the baseline did not start')
}

/**
 * Opens one call. Under callgrind the gateway's start-up can still count as event-loop delay for a second after
 * /ready answers, so it may refuse with 503 (overloaded); like a vendor, the driver tries again.
 */
async function connect (port: number, variant: Variant, index: number): Promise<WebSocket> {
  for (let attempt = 1; ; attempt++) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ingest?sample-rate=${SAMPLE_RATE}`, { perMessageDeflate: false })
    const opened = await new Promise<boolean>((resolve, reject) => {
      ws.once('open', () => resolve(true))
      ws.once('unexpected-response', (_request, response) => {
        if (response.statusCode === 503 && attempt < 30) resolve(false)
        else reject(new Error(`upgrade refused with ${response.statusCode ?? '?'}`))
      })
      ws.once('error', reject)
    })
    if (opened) {
      for (const message of openingMessages(`CA${variant.replace(/\W/g, '_')}${index}`, `MZ${index}`, SAMPLE_RATE)) ws.send(message)
      return ws
    }
    ws.terminate()
    await new Promise((resolve) => setTimeout(resolve, 1000))
  }
}

const redis = await TestRedis.start()
// On SIGINT, SIGTERM or SIGHUP every child is killed first (bench/children.ts), then these.
onStop(() => redis.stop())
onStop(removeWorktrees)
try {
  const variants = process.env.BENCH_VARIANTS?.split(',') ?? ['baseline', 'gateway']
  const results = []
  for (const variant of variants) {
    const result = await count(variant, redis.url)
    process.stderr.write(`${variant}: ${Math.round(result.instructions_per_frame)} instructions per frame (${result.frames} frames)\n`)
    results.push(result)
  }
  const [first] = results
  // With the floor among the variants, a column of each one's count ÷ the floor's: what it does beyond moving the bytes.
  const floor = results.find((r) => parseVariant(r.variant).server === 'floor')
  const table = [`| variant | instructions per frame | ÷ first |${floor === undefined ? '' : ' ÷ floor |'}`, `|---|---|---|${floor === undefined ? '' : '---|'}`]
    .concat(results.map((r) => `| ${r.variant} | ${Math.round(r.instructions_per_frame)} | ${(r.instructions_per_frame / first.instructions_per_frame).toFixed(3)} |${floor === undefined ? '' : ` ${(r.instructions_per_frame / floor.instructions_per_frame).toFixed(3)} |`}`))
  process.stdout.write(`${table.join('\n')}\n`)
  const baseline = results.find((r) => r.variant === 'baseline')
  const gateway = results.find((r) => r.variant === 'gateway')
  if (baseline !== undefined && gateway !== undefined) {
    const { gateway_per_baseline: budget } = JSON.parse(readFileSync(join(root, 'bench', 'instructions-budget.json'), 'utf8')) as { gateway_per_baseline: number }
    const ratio = gateway.instructions_per_frame / baseline.instructions_per_frame
    if (ratio > budget) {
      process.stderr.write(`bench:instructions: the gateway runs ${ratio.toFixed(3)} times the baseline's instructions per frame, over its budget of ${budget} (bench/instructions-budget.json)\n`)
      process.exitCode = 1
    } else {
      process.stdout.write(`gateway ÷ baseline ${ratio.toFixed(3)}, within the budget of ${budget} (bench/instructions-budget.json)\n`)
    }
  }
} finally {
  removeWorktrees()
  await redis.stop()
}
