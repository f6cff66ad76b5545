/**
 * A stopped benchmark leaves no process behind (bench/children.ts): a signal to it, the death of what started it
 * (npm), or SIGKILL to it (its servers watch their parent, bench/probe.mjs). Cheap: the runs are stopped while the
 * benchmark compiles, before any load; the SIGKILL case uses the probe the servers are started with.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const repo = fileURLToPath(new URL('..', import.meta.url))
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Live processes (not zombies) by pid: parent pid and command line. */
function processes (): Map<number, { ppid: number, cmdline: string }> {
  const found = new Map<number, { ppid: number, cmdline: string }>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (state === 'Z') continue
      found.set(Number(name), { ppid: Number(ppid), cmdline: readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ') })
    } catch {
      // gone meanwhile
    }
  }
  return found
}

function descendants (pid: number): Map<number, string> {
  const all = processes()
  const found = new Map<number, string>()
  const walk = (parent: number): void => {
    for (const [child, { ppid, cmdline }] of all) {
      if (ppid === parent && !found.has(child)) {
        found.set(child, cmdline)
        walk(child)
      }
    }
  }
  walk(pid)
  return found
}

async function until<T> (what: string, probe: () => T | undefined, ms = 60_000): Promise<T> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(100)) {
    const value = probe()
    if (value !== undefined) return value
  }
  throw new Error(`timed out waiting for ${what}`)
}

/** Waits until none of `pids` is alive; returns those still alive after `ms`. */
async function survivors (pids: Iterable<number>, ms = 5000): Promise<number[]> {
  const watched = [...pids]
  for (const end = Date.now() + ms; Date.now() < end; await sleep(100)) {
    const all = processes()
    if (watched.every((pid) => !all.has(pid))) return []
  }
  const all = processes()
  return watched.filter((pid) => all.has(pid))
}

/** Waits until the benchmark whose runner is `runner` is compiling: tsc and redis-server are up. */
async function compiling (runner: number): Promise<Map<number, string>> {
  return await until('the benchmark to start tsc and redis-server', () => {
    const below = descendants(runner)
    const cmdlines = [...below.values()]
    return cmdlines.some((cmdline) => cmdline.includes('typescript/bin/tsc')) && cmdlines.some((cmdline) => cmdline.startsWith('redis-server')) ? below : undefined
  })
}

const noProc = !existsSync('/proc/self/stat') && 'needs /proc'

t.test('SIGTERM to a running benchmark ends every process it started', { skip: noProc }, async (t) => {
  const runner = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', 'smoke'], { cwd: repo, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  runner.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const exited = once(runner, 'exit')
  t.teardown(() => { if (runner.exitCode === null) runner.kill('SIGKILL') })
  const started = await compiling(runner.pid!)
  runner.kill('SIGTERM')
  const [code] = await exited as [number | null]
  t.equal(code, 143, 'the benchmark exits 128 + SIGTERM')
  t.match(stderr, /bench: SIGTERM: ending \d+ child process/, 'it says what it ends')
  t.same(await survivors(started.keys()), [], `nothing it started is left: ${[...started.values()].join('; ')}`)
})

t.test('the benchmark stops when what started it dies (npm killed with SIGKILL)', { skip: noProc }, async (t) => {
  // A stand-in for npm, whose script execs the runner: a parent that starts the benchmark, then is killed outright.
  const script = "const c = require('node:child_process').spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', 'smoke'], { stdio: 'ignore' }); console.log(c.pid); setInterval(() => {}, 1000)"
  const parent = spawn(process.execPath, ['-e', script], { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { if (parent.exitCode === null) parent.kill('SIGKILL') })
  const [line] = await once(parent.stdout, 'data') as [Buffer]
  const runner = Number(line.toString().trim())
  const started = await compiling(runner)
  parent.kill('SIGKILL')
  t.same(await survivors([runner, ...started.keys()], 15_000), [], `the runner and all it started are gone: ${[...started.values()].join('; ')}`)
})

t.test('a server under benchmark ends when the benchmark is killed with SIGKILL', { skip: noProc }, async (t) => {
  // Servers run with bench/probe.mjs preloaded; here it is preloaded into an idle node, started by a stand-in runner.
  // As bench/run.ts does, it names itself in BENCH_PARENT_PID.
  const script = "const c = require('node:child_process').spawn(process.execPath, ['--import', './bench/probe.mjs', '-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore', env: { ...process.env, BENCH_PARENT_PID: String(process.pid) } }); console.log(c.pid); setInterval(() => {}, 1000)"
  const parent = spawn(process.execPath, ['-e', script], { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { if (parent.exitCode === null) parent.kill('SIGKILL') })
  const [line] = await once(parent.stdout, 'data') as [Buffer]
  const server = Number(line.toString().trim())
  await sleep(1000)
  t.ok(processes().has(server), 'the server runs while its benchmark does')
  parent.kill('SIGKILL')
  const left = await survivors([server])
  t.same(left, [], `the server ends within a second of its benchmark${left.length > 0 ? `: ${readFileSync(`/proc/${server}/stat`, 'utf8')}` : ''}`)
})
