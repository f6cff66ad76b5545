/**
 * What the benchmarks run: the hand-written baseline, the floor (bench/floor-server.ts: the bytes moved, nothing
 * parsed), this checkout's gateway, or the gateway of a git ref (`gateway@<ref>`, from a temporary worktree), each
 * compiled and given as a node command line with its environment.
 * A variant may end in settings, each after a `+` (parseVariant): `gateway+streams`, `gateway@HEAD~1+workers2`,
 * `gateway+streams+REDIS_STREAM_MAXLEN=300`, `gateway+cpus0-1`.
 */
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { track } from './children.js'

/** 'baseline', 'floor', 'gateway' (this checkout) or 'gateway@<git ref>', each optionally followed by `+<setting>`s. */
export type Variant = string

export interface ParsedVariant {
  server: 'baseline' | 'floor' | 'gateway'
  /** The git ref of `gateway@<ref>`; undefined for this checkout. */
  ref: string | undefined
  /** Environment the settings give the server, over the harness's own. */
  env: Record<string, string>
  /** REDIS_TRANSPORT as the server will run it: what the latency sink must read. */
  transport: 'pubsub' | 'streams'
  /** WORKERS as a number (1 unless `+workers<N>` or `+WORKERS=<N>`). */
  workers: number
  /** The CPUs (taskset -c) the server runs on: `1`, or `0-1` for more than one worker, unless `+cpus<list>` says. */
  cpus: string
  /** `+watch`: a dashboard feed is open on the gateway for the whole of each step, as an operator's browser would be. */
  watch: boolean
}

/**
 * Splits a variant into its server, its git ref and its settings. Settings follow the server (and its ref), each after
 * a `+`: `streams` (REDIS_TRANSPORT=streams), `workers<N>` (WORKERS=N; `workersauto` for WORKERS=auto),
 * `cpus<list>` (the taskset CPU list, e.g. `cpus0-1`), `watch` (a dashboard feed open during each step), or any
 * `NAME=value` as environment. A ref holding `+` cannot be
 * named. The baseline and the floor take only `NAME=value` and `cpus`: they have no Streams mode and no workers.
 */
export function parseVariant (variant: Variant): ParsedVariant {
  const [base, ...settings] = variant.split('+')
  const at = base.indexOf('@')
  const server = at === -1 ? base : base.slice(0, at)
  const ref = at === -1 ? undefined : base.slice(at + 1)
  if (server !== 'baseline' && server !== 'floor' && server !== 'gateway') throw new Error(`unknown variant ${variant}: baseline, floor or gateway[@<ref>], then +<setting>s`)
  if (server !== 'gateway' && ref !== undefined) throw new Error(`${variant}: the ${server} has no @<ref>`)
  const env: Record<string, string> = {}
  let cpus: string | undefined
  let watch = false
  for (const setting of settings) {
    const assignment = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(setting)
    const workers = /^workers(\d+|auto)$/.exec(setting)
    const cpuList = /^cpus([\d,-]+)$/.exec(setting)
    if (assignment !== null) env[assignment[1]] = assignment[2]
    else if (setting === 'streams') env.REDIS_TRANSPORT = 'streams'
    else if (setting === 'pubsub') env.REDIS_TRANSPORT = 'pubsub'
    else if (workers !== null) env.WORKERS = workers[1]
    else if (cpuList !== null) cpus = cpuList[1]
    else if (setting === 'watch') watch = true
    else throw new Error(`${variant}: unknown setting +${setting} (streams, workers<N>, cpus<list>, watch or NAME=value)`)
  }
  if (server !== 'gateway' && (env.REDIS_TRANSPORT !== undefined || env.WORKERS !== undefined || watch)) throw new Error(`${variant}: the ${server} has no Streams mode, no workers and no dashboard`)
  const workers = env.WORKERS === undefined ? 1 : env.WORKERS === 'auto' ? availableParallelism() : Number(env.WORKERS)
  return { server, ref, env, transport: env.REDIS_TRANSPORT === 'streams' ? 'streams' : 'pubsub', workers, cpus: cpus ?? (workers > 1 ? `0-${availableParallelism() - 1}` : '1'), watch }
}

export const root = fileURLToPath(new URL('..', import.meta.url))

export interface ServerCommand {
  args: string[]
  env: Record<string, string>
  cwd: string
  /** The baseline and the floor print this line when they listen; the gateway is ready when /ready says 200. */
  readyLine?: string
}

/**
 * Both servers run compiled JavaScript, as production does (`npm start` runs dist/): under tsx, each would also
 * carry the transpiler and its source maps on its heap, and heap size is what lengthens garbage-collection pauses.
 */
export async function serverCommand (variant: Variant, port: number, redisUrl: string, nodeOptions: string[] = []): Promise<ServerCommand> {
  const parsed = parseVariant(variant)
  const env = { PATH: process.env.PATH ?? '', PORT: String(port), REDIS_URL: redisUrl, REDIS_PREFIX: 'bench:' }
  if (parsed.server === 'baseline') {
    return {
      args: [...nodeOptions, join(await compiled(root), 'bench', 'baseline-server.js')],
      env: { ...env, BASELINE_BALLAST_MB: process.env.BASELINE_BALLAST_MB ?? '0', ...parsed.env },
      cwd: root,
      readyLine: 'listening'
    }
  }
  if (parsed.server === 'floor') {
    return {
      args: [...nodeOptions, join(await compiled(root), 'bench', 'floor-server.js')],
      // The floor builds each call's message once, with the PCM length of the generator's frames: it needs the cadence.
      env: { ...env, BENCH_FRAME_MS: process.env.BENCH_FRAME_MS ?? '20', ...parsed.env },
      cwd: root,
      readyLine: 'listening'
    }
  }
  const dir = gatewayDir(parsed.ref)
  return {
    args: [...nodeOptions, join(await compiled(dir), 'src', 'server.js')],
    // As shipped, less what would refuse or slow a benchmark's load: info logs, admission limits, Twilio detection,
    // and the inbound rate limits, which a closed-loop driver (bench/instructions.ts) passes by design; their
    // buckets are still counted on every message, only never emptied.
    env: {
      ...env,
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      MAX_CONCURRENT_CALLS: '100000',
      EVENT_LOOP_DELAY_LIMIT_MS: '60000',
      DRAIN_TIMEOUT_MS: '0',
      SUPPORT_TWILIO: 'false',
      INBOUND_MAX_AUDIO_SPEED: '1000',
      INBOUND_MAX_MESSAGES_PER_S: '1000000',
      // The variant's settings last: `+streams`, `+workers2`, `+NAME=value`.
      ...parsed.env
    },
    cwd: dir
  }
}

const builds = new Map<string, string>()

/**
 * Compiles a tree once per benchmark run, inside it (bench/results/ is ignored), so its node_modules resolve. tsc
 * runs as a tracked child, not spawnSync, so a signal during the compile ends it at once (bench/children.ts).
 */
async function compiled (dir: string): Promise<string> {
  let out = builds.get(dir)
  if (out === undefined) {
    out = join(dir, 'bench', 'results', 'dist')
    rmSync(out, { recursive: true, force: true })
    const tsc = track(spawn(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json', '--outDir', out], { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'] }))
    const [code] = await once(tsc, 'exit') as [number | null]
    if (code !== 0) throw new Error(`compiling ${dir} failed`)
    builds.set(dir, out)
  }
  return out
}

/** Polls /ready until the gateway is connected to Redis. */
export async function untilReady (port: number, attempts = 300): Promise<void> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const status = await fetch(`http://127.0.0.1:${port}/ready`).then((response) => response.status, () => 0)
    if (status === 200) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error('the gateway did not become ready')
}

const worktrees = new Map<string, string>()

function gatewayDir (ref: string | undefined): string {
  if (ref === undefined) return root
  let dir = worktrees.get(ref)
  if (dir === undefined) {
    dir = mkdtempSync(join(tmpdir(), 'rtaa-bench-'))
    const added = spawnSync('git', ['worktree', 'add', '--detach', dir, ref], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] })
    if (added.status !== 0) throw new Error(`git worktree add ${ref} failed`)
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'))
    worktrees.set(ref, dir)
  }
  return dir
}

export function removeWorktrees (): void {
  for (const dir of worktrees.values()) spawnSync('git', ['worktree', 'remove', '--force', dir], { cwd: root })
  worktrees.clear()
}
