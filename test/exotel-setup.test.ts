/**
 * The README's "The setup checklist, step by step", run as it is written: its `exotel-setup:*` blocks, with TLS off
 * and on. Only what cannot be fixed on a shared test machine is replaced: the ports (8443, 8080), the log file and
 * the certificate paths become the test's own, and the Redis is the test's own.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { TestRedis, freePort } from './helpers/redis-server.js'
import { runServer } from './helpers/server-process.js'
import { selfSignedCertificate } from './helpers/tls.js'

const repo = fileURLToPath(new URL('..', import.meta.url))
const readme = readFileSync(join(repo, 'README.md'), 'utf8')

/** The README's block of one kind, its list indentation removed. */
function block (kind: string): string {
  const match = new RegExp(`^( *)\`\`\`sh exotel-setup:${kind}\\n([\\s\\S]*?)^ *\`\`\``, 'm').exec(readme)
  if (match === null) throw new Error(`README.md has no exotel-setup:${kind} block`)
  const indent = match[1].length
  return match[2].split('\n').map((line) => line.slice(indent)).join('\n')
}

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

async function runChecklist (t: Test, tls: boolean): Promise<void> {
  const dir = t.testdir()
  const [port, adminPort] = [await freePort(), await freePort()]
  const { cert, key } = selfSignedCertificate(dir)
  const log = join(dir, 'rtaa-ingest.log')
  const local = (script: string): string => script
    .replaceAll('8443', String(port))
    .replaceAll('8080', String(adminPort))
    .replaceAll('/tmp/rtaa-ingest.log', log)
    .replaceAll('/etc/rtaa-ingest/tls/cert.pem', cert)
    .replaceAll('/etc/rtaa-ingest/tls/key.pem', key)
  const bash = (script: string, cwd: string) => spawnSync('bash', ['-euo', 'pipefail', '-c', local(script)], { cwd, encoding: 'utf8', env: { ...process.env } })

  // 1. Configure.
  t.equal(bash(block('env'), dir).status, 0, '.env.local written')
  if (tls) t.equal(bash(block('tls'), dir).status, 0, 'TLS added to .env.local')
  // 2. Restart: the server as npm start runs it, from the directory that holds .env.local.
  // PORT stands in for the default 8443, as the ports in the blocks do.
  const server = runServer(dir, { PORT: String(port), REDIS_URL: redis.url, REDIS_PREFIX: `setup${tls ? 'tls' : ''}:` })
  t.teardown(() => { server.child.kill('SIGKILL') })
  await server.lines.waitFor((line) => line.msg === 'playback subscriber connected', 'redis', 30_000)
  await server.lines.waitFor((line) => String(line.msg).startsWith('Server listening') && String(line.msg).includes(String(adminPort)), 'the admin port', 30_000)
  // 3. The test call and the checks, from the repository, as an operator types them.
  const check = bash(block(tls ? 'check-tls' : 'check'), repo)
  t.equal(check.status, 0, `every check passes${check.status === 0 ? '' : `:\n${check.stdout}\n${check.stderr}`}`)
  t.match(check.stdout, /"sample_rate": 16000/, 'the simulator took the rate from the URL')
  t.match(check.stdout, /"vendor":"exotel".*"msg":"call started"/, 'the log shows the call, under grep exotel')
  t.match(check.stdout, /"status":"ok"/, 'health')
  t.match(check.stdout, /"status":"ready"/, 'readiness')
}

t.test('the README\'s Exotel setup checklist passes as written, with TLS off', (t) => runChecklist(t, false))
t.test('the README\'s Exotel setup checklist passes as written, with TLS on', (t) => runChecklist(t, true))
