import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { watch } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { startReplica, type Replica } from './server-process.js'

const bin = (name: string): string => fileURLToPath(new URL(`../../bin/${name}.mjs`, import.meta.url))

export interface Run {
  code: number | null
  stdout: string
  stderr: string
}

export interface Tool {
  child: ChildProcess
  done: Promise<Run>
  /** Resolves once stderr holds `text`; rejects if the tool exits first. */
  stderrHas: (text: string) => Promise<void>
}

const running = new Set<ChildProcess>()
// A test file that times out is killed before its teardowns: its tools must not outlive it.
process.once('exit', () => { for (const child of running) child.kill('SIGKILL') })

/** Runs a tool as a user would: its own process, its own working directory, config from the environment. */
export function tool (name: string, args: string[], cwd: string, env: Record<string, string> = {}): Tool {
  const child = spawn(process.execPath, [bin(name), ...args], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(child)
  child.once('exit', () => running.delete(child))
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
    child.emit('stderr-grew')
  })
  const done = once(child, 'exit').then(([code]) => ({ code: code as number | null, stdout, stderr }))
  const stderrHas = async (text: string): Promise<void> => {
    while (!stderr.includes(text)) {
      if (child.exitCode !== null) throw new Error(`${name} exited before printing "${text}": ${stderr}`)
      await Promise.race([once(child, 'stderr-grew'), once(child, 'exit')])
    }
  }
  return { child, done, stderrHas }
}

/**
 * Resolves with the file's content once it exists and `accept` takes it. Its directory is watched before the first
 * look, so an appearance in between is not missed; no polling.
 */
export function fileAppears (path: string, accept: (content: string) => boolean = () => true, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const watcher = watch(dirname(path))
    const timer = setTimeout(() => {
      watcher.close()
      reject(new Error(`${path} did not appear`))
    }, timeoutMs)
    let looking = false
    let again = false
    const look = async (): Promise<void> => {
      if (looking) {
        again = true
        return
      }
      looking = true
      do {
        again = false
        const content = await readFile(path, 'utf8').catch(() => null)
        if (content !== null && accept(content)) {
          clearTimeout(timer)
          watcher.close()
          resolve(content)
          return
        }
      } while (again)
      looking = false
    }
    watcher.on('change', () => { look().catch(reject) })
    look().catch(reject)
  })
}

let counter = 0

/** A gateway process for a tools test, with a REDIS_PREFIX of its own, as the tools are told. */
export async function startToolsGateway (t: Test, redisUrl: string, env: Record<string, string> = {}): Promise<Replica & { prefix: string }> {
  const prefix = `tools${process.pid}-${++counter}:`
  return { ...await startReplica(t, { REDIS_URL: redisUrl, REDIS_PREFIX: prefix, ...env }), prefix }
}

/** rtaa-record for one call into `dir`/recordings, returned once its --ready-file says it is subscribed. */
export async function startRecorder (dir: string, redisUrl: string, prefix: string, env: Record<string, string> = {}): Promise<Tool> {
  const ready = join(dir, 'recorder.ready')
  const run = tool('rtaa-record', ['--calls', '1', '--out', 'recordings', '--ready-file', ready], dir, { REDIS_URL: redisUrl, REDIS_PREFIX: prefix, ...env })
  await Promise.race([fileAppears(ready), run.done.then((result) => { throw new Error(`rtaa-record exited: ${result.stderr}`) })])
  return run
}

/** What an expected failure prints: one line, no stack. */
export function isOneLine (stderr: string): boolean {
  return stderr.trim().split('\n').length === 1 && !stderr.includes('    at ')
}
