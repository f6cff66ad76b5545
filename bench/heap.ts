/**
 * What a server keeps on its heap: settled after start, and per live call. Each variant runs compiled, with
 * `--expose-gc` and bench/heap-probe.mjs preloaded, which on SIGWINCH collects twice and reports heapUsed. The
 * heap is read once the server has served a first round of calls and is idle again, then with BENCH_CALLS calls
 * live (each started and sent a few frames), and the difference is divided by the calls.
 *
 *   npx tsx bench/heap.ts                                       baseline, gateway, floor if there is one
 *   BENCH_VARIANTS=gateway@HEAD~1,gateway npx tsx bench/heap.ts  a change's before and after
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import WebSocket from 'ws'
import { TestRedis, freePort } from '../test/helpers/redis-server.js'
import { onStop, track } from './children.js'
import { mediaMessage, openingMessages } from './exotel-frames.js'
import { removeWorktrees, root, serverCommand, untilReady, type Variant } from './servers.js'

const CALLS = Number(process.env.BENCH_CALLS ?? 200)
const SAMPLE_RATE = 16000
const payload = Buffer.alloc(640, 0x11).toString('base64')

async function measure (variant: Variant, redisUrl: string): Promise<{ settled: number, live: number }> {
  const port = await freePort()
  const command = await serverCommand(variant, port, redisUrl, ['--expose-gc', '--import', join(root, 'bench', 'heap-probe.mjs')])
  const server = track(spawn(process.execPath, command.args, { cwd: command.cwd, env: { ...command.env, ...(process.env.HEAP_SNAPSHOT_DIR === undefined ? {} : { HEAP_SNAPSHOT_DIR: process.env.HEAP_SNAPSHOT_DIR }) }, stdio: ['ignore', 'pipe', 'inherit'] }))
  let output = ''
  let ready = false
  const reports: number[] = []
  const waiting: Array<() => void> = []
  server.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString()
    for (const [, bytes] of output.matchAll(/^heap_used (\d+)$/gm)) reports.push(Number(bytes))
    if (command.readyLine !== undefined && output.split('\n').includes(command.readyLine)) ready = true
    output = output.slice(output.lastIndexOf('\n') + 1)
    while (waiting.length > 0 && reports.length > 0) waiting.shift()!()
  })
  const heap = async (): Promise<number> => {
    const reported = new Promise<void>((resolve) => waiting.push(resolve))
    server.kill('SIGWINCH')
    await reported
    return reports.shift()!
  }
  try {
    if (command.readyLine !== undefined) {
      const started = (): boolean => ready
      for (let i = 0; i < 300 && !started(); i++) await new Promise((resolve) => setTimeout(resolve, 100))
    } else {
      await untilReady(port)
    }
    const open = async (calls: number, round: string): Promise<WebSocket[]> => {
      // Ids of their own: a call id another run left claimed in Redis would be refused as a duplicate.
      const name = `${round}${Date.now()}`
      const sockets: WebSocket[] = []
      for (let index = 0; index < calls; index++) {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ingest?sample-rate=${SAMPLE_RATE}`, { perMessageDeflate: false })
        ws.on('error', () => {})
        await once(ws, 'open')
        for (const message of openingMessages(`CA${name}${index}`, `MZ${name}${index}`, SAMPLE_RATE)) ws.send(message)
        for (let k = 0; k < 5; k++) ws.send(mediaMessage(`MZ${name}${index}`, k, 20, payload))
        sockets.push(ws)
      }
      await new Promise((resolve) => setTimeout(resolve, 1500))
      return sockets
    }
    // A first round of calls, ended, so the code a call runs is compiled before the settled heap is read: otherwise
    // the first calls measured carry it (about 17 KB each of 200).
    for (const ws of await open(CALLS / 4, 'warm')) ws.close()
    await new Promise((resolve) => setTimeout(resolve, 1500))
    const settled = await heap()
    const sockets = await open(CALLS, 'heap')
    const live = await heap()
    for (const ws of sockets) ws.terminate()
    return { settled, live }
  } finally {
    server.kill('SIGKILL')
    await once(server, 'exit').catch(() => {})
  }
}

const redis = await TestRedis.start()
onStop(() => redis.stop())
onStop(removeWorktrees)
try {
  const variants = process.env.BENCH_VARIANTS?.split(',') ?? ['baseline', 'gateway']
  const rows = ['| variant | settled heap MB | heap with ' + CALLS + ' calls MB | KB per call |', '|---|---|---|---|']
  for (const variant of variants) {
    const { settled, live } = await measure(variant, redis.url)
    rows.push(`| ${variant} | ${(settled / 2 ** 20).toFixed(1)} | ${(live / 2 ** 20).toFixed(1)} | ${((live - settled) / CALLS / 1024).toFixed(1)} |`)
    process.stderr.write(`${rows.at(-1)}\n`)
  }
  process.stdout.write(`${rows.join('\n')}\n`)
} finally {
  removeWorktrees()
  await redis.stop()
}
