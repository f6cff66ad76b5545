import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { freePort } from './redis-server.js'
import { Collected } from './waiter.js'

const SERVER = fileURLToPath(new URL('../../src/server.ts', import.meta.url))
const TSX = import.meta.resolve('tsx')

export interface ServerProcess {
  child: ChildProcess
  lines: Collected<Record<string, unknown>>
  stderr: () => string
  exited: Promise<number | null>
}

/** Runs src/server.ts as operators do: its own process, its own working directory, config from env and dotenv files. */
export function runServer (cwd: string, env: Record<string, string>): ServerProcess {
  const child = spawn(process.execPath, ['--import', TSX, SERVER], {
    cwd,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const lines = new Collected<Record<string, unknown>>()
  let buffered = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    const complete = buffered.split('\n')
    buffered = complete.pop() ?? ''
    for (const line of complete) if (line.startsWith('{')) lines.push(JSON.parse(line) as Record<string, unknown>)
  })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  // A test file that times out never runs its teardowns: the server must not outlive it.
  const orphaned = (): void => { child.kill('SIGKILL') }
  process.once('exit', orphaned)
  exited.then(() => process.off('exit', orphaned), () => {})
  return { child, lines, stderr: () => stderr, exited }
}

export interface Replica extends ServerProcess {
  /** ws://127.0.0.1:port */
  wsUrl: string
  url: string
}

/** A gateway replica in a process of its own, listening and connected to Redis; killed when the test ends. */
export async function startReplica (t: Test, env: Record<string, string>): Promise<Replica> {
  const port = await freePort()
  // A directory of its own, so no .env of the repository's is read and replicas started together do not share one.
  const dir = mkdtempSync(join(tmpdir(), 'rtaa-replica-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // A machine loaded by other tests must not turn a test's calls away as "under pressure"; tests of admission set it.
  const server = runServer(dir, { HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'debug', DRAIN_TIMEOUT_MS: '0', EVENT_LOOP_DELAY_LIMIT_MS: '60000', ...env })
  t.teardown(() => { server.child.kill('SIGKILL') })
  const died = server.exited.then((code) => { throw new Error(`the replica exited with ${code}: ${server.stderr()}`) })
  await Promise.race([died, Promise.all([
    server.lines.waitFor((line) => line.msg === 'redis connected', 'redis connected', 30_000),
    server.lines.waitFor((line) => line.msg === 'playback subscriber connected', 'playback subscriber connected', 30_000),
    server.lines.waitFor((line) => String(line.msg).startsWith('Server listening'), 'listening', 30_000)
  ])])
  died.catch(() => {})
  return { ...server, wsUrl: `ws://127.0.0.1:${port}`, url: `http://127.0.0.1:${port}` }
}
