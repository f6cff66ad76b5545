/**
 * Every process a benchmark starts ends with it: when it exits (done, failed, a timeout of its own), when it is sent
 * SIGINT, SIGTERM or SIGHUP (a CI timeout, Ctrl-C), when its own parent dies (npm killed), and, for the servers, the
 * sink and the load generator, when it is killed outright (SIGKILL): those watch their parent (bench/lifeline.ts)
 * and end themselves once it is gone. Without this a stopped run left its server running, pinned to a core.
 */
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'

const live = new Set<ChildProcess>()
const cleanups: Array<() => void | Promise<void>> = []

/** Ends the child with the benchmark; returns it. */
export function track<T extends ChildProcess> (child: T): T {
  live.add(child)
  child.once('exit', () => live.delete(child))
  child.once('error', () => live.delete(child))
  return child
}

/** SIGKILL to every child still running: a stopped benchmark has no result to wait for. */
export function killChildren (): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
}

/** Waits until every child killed has exited (at most `ms`). */
async function reaped (ms: number): Promise<void> {
  const exits = [...live].filter((child) => child.exitCode === null && child.signalCode === null).map((child) => once(child, 'exit'))
  await Promise.race([Promise.all(exits), new Promise((resolve) => setTimeout(resolve, ms).unref())])
}

/** Also run on a signal (removing worktrees, stopping redis-server), after the children are killed. */
export function onStop (cleanup: () => void | Promise<void>): void {
  cleanups.push(cleanup)
}

process.on('exit', killChildren)

let stopping = false

/** Kills every child, runs the cleanups (ten seconds at most), and exits with `code`. */
function stop (why: string, code: number): void {
  if (stopping) return
  stopping = true
  process.stderr.write(`bench: ${why}: ending ${live.size} child process(es)\n`)
  killChildren()
  const stopped = (async () => {
    await reaped(5000)
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup()
      } catch (error) {
        process.stderr.write(`bench: cleanup failed: ${String(error)}\n`)
      }
    }
  })()
  Promise.race([stopped, new Promise((resolve) => setTimeout(resolve, 10_000).unref())])
    .finally(() => process.exit(code))
}

const signals = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const
for (const [signal, number] of Object.entries(signals)) process.once(signal, () => stop(signal, 128 + number))

// The benchmark's own parent gone (npm killed, the shell that ran it closed): stop as on SIGHUP. The npm scripts
// `exec` node, so npm itself is that parent.
const parent = process.ppid
setInterval(() => {
  if (process.ppid !== parent) stop('the process that started the benchmark is gone', 128 + signals.SIGHUP)
}, 500).unref()
