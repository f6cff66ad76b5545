// Takes docs/dashboard.png: the dashboard during a 20-call simulation. Starts its own redis-server and gateway on
// free ports, plays the calls with rtaa-sim, opens the page in Debian's headless chromium (playwright-core), selects
// a call, and saves the picture. Run: npx tsx scripts/dashboard-screenshot.ts [out.png]
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const out = process.argv[2] ?? join(root, 'docs', 'dashboard.png')
const children: ChildProcess[] = []
process.on('exit', () => { for (const child of children) child.kill('SIGKILL') })

async function freePort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  return port
}

function run (command: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(command, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(child)
  return child
}

/** Resolves once the child prints `text` on stdout. */
async function printed (child: ChildProcess, text: string): Promise<void> {
  let seen = ''
  for await (const chunk of child.stdout as NodeJS.ReadableStream) {
    seen += String(chunk)
    if (seen.includes(text)) return
  }
  throw new Error(`exited before printing ${text}`)
}

const [redisPort, port] = [await freePort(), await freePort()]
const dir = mkdtempSync(join(tmpdir(), 'rtaa-shot-'))
const redis = run('redis-server', ['--port', String(redisPort), '--save', '', '--appendonly', 'no', '--dir', dir])
await printed(redis, 'Ready to accept connections')
const gateway = run(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
  PORT: String(port),
  HOST: '127.0.0.1',
  REDIS_URL: `redis://127.0.0.1:${redisPort}`,
  DASHBOARD_LISTEN: 'true',
  LOG_LEVEL: 'info',
  BASIC_AUTH_CREDENTIALS: 'acme:acme-token-0001,globex:globex-token-0002',
  BASIC_AUTH_ACCOUNTS: 'acme=ACacme,globex=ACglobex'
})
await printed(gateway, 'playback subscriber connected')

const sim = (args: string[]): ChildProcess => run(process.execPath, ['bin/rtaa-sim.mjs', '--duration', '24', '--ramp-ms', '150', ...args])
const ws = `ws://127.0.0.1:${port}/v1/ingest`
const sims = [
  sim(['--url', `${ws}?sample-rate=16000`, '--calls', '6', '--basic', 'acme:acme-token-0001', '--account', 'ACacme', '--call-prefix', 'CAacme16k']),
  sim(['--url', `${ws}?sample-rate=8000`, '--calls', '4', '--basic', 'globex:globex-token-0002', '--account', 'ACglobex', '--call-prefix', 'CAglobex', '--gap', '12']),
  sim(['--url', ws, '--vendor', 'twilio', '--calls', '4', '--call-prefix', 'CAtwilio']),
  sim(['--url', ws, '--vendor', 'plivo', '--tracks', 'both', '--calls', '3', '--call-prefix', 'plivo-both']),
  sim(['--url', ws, '--vendor', 'telnyx', '--calls', '3', '--call-prefix', 'telnyx'])
]
// A few calls end early, so the ended table has rows.
const early = sim(['--url', `${ws}?sample-rate=8000`, '--duration', '3', '--calls', '2', '--basic', 'acme:acme-token-0001', '--account', 'ACacme', '--call-prefix', 'CAshort'])

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
})
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } })
  await page.goto(`http://127.0.0.1:${port}/dashboard`)
  await once(early, 'exit')
  // 20 live calls (the two short ones have ended), the globex calls past their gap, and a few seconds of levels.
  await page.waitForFunction(() => document.querySelectorAll('#live tbody tr').length === 20, undefined, { timeout: 60_000 })
  await page.waitForFunction(() => [...document.querySelectorAll('#live td[data-field="gaps"]')].some((cell) => cell.textContent === '12'), undefined, { timeout: 60_000 })
  await page.locator('#live tr[data-interaction-id="plivo-both-1"]').click()
  await page.waitForTimeout(6000)
  await page.screenshot({ path: out, fullPage: true })
  process.stdout.write(`saved ${out}\n`)
} finally {
  await browser.close()
  for (const child of [...sims, gateway, redis]) child.kill('SIGTERM')
  rmSync(dir, { recursive: true, force: true })
}
