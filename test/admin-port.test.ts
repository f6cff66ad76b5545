import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import t, { type Test } from 'tap'
import { TestRedis, freePort } from './helpers/redis-server.js'
import { ProviderClient, exotelStrings, pcmFrame, refusedUpgrade } from './helpers/exotel.js'
import { runServer, type ServerProcess } from './helpers/server-process.js'
import { Subscriber } from './helpers/subscriber.js'
import { selfSignedCertificate } from './helpers/tls.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

/** A gateway in its own process with ADMIN_PORT set, listening on both ports and connected to Redis. */
async function startWithAdmin (t: Test, dir: string, env: Record<string, string>): Promise<{ server: ServerProcess, port: number, adminPort: number, admin: string }> {
  const port = await freePort()
  const adminPort = await freePort()
  const server = runServer(dir, { REDIS_URL: redis.url, HOST: '127.0.0.1', PORT: String(port), ADMIN_PORT: String(adminPort), DRAIN_TIMEOUT_MS: '0', ...env })
  t.teardown(() => { server.child.kill('SIGKILL') })
  await server.lines.waitFor((line) => line.msg === 'playback subscriber connected', 'playback subscriber connected', 30_000)
  await server.lines.waitFor((line) => line.msg === `Server listening at http://127.0.0.1:${adminPort}`, 'the admin port listening', 30_000)
  return { server, port, adminPort, admin: `http://127.0.0.1:${adminPort}` }
}

t.test('with TLS on, the admin port serves /health, /ready and /metrics over plain HTTP and refuses WebSockets', async (t) => {
  const dir = t.testdir()
  const { cert, key } = selfSignedCertificate(dir)
  const { server, port, adminPort, admin } = await startWithAdmin(t, dir, { TLS_CERT_FILE: cert, TLS_KEY_FILE: key, REDIS_PREFIX: 'admin:', DRAIN_TIMEOUT_MS: '5000' })

  const health = await fetch(`${admin}/health`)
  t.equal(health.status, 200)
  t.same(await health.json(), { status: 'ok' })
  const ready = await fetch(`${admin}/ready`)
  t.equal(ready.status, 200)
  t.same(await ready.json(), { status: 'ready' })

  // The ingest port speaks TLS only: plain HTTP there fails, as curl http://… does, while wss works.
  await t.rejects(fetch(`http://127.0.0.1:${port}/health`), 'plain HTTP on the ingest port fails')
  const subscriber = await Subscriber.start(t, redis.url, 'admin:')
  const client = await ProviderClient.connect(`wss://127.0.0.1:${port}/v1/ingest/exotel?sample-rate=8000`, { ca: readFileSync(cert) })
  client.send(exotelStrings.start('CAadmin'))
  client.send(exotelStrings.media('MZCAadmin', 2, 1, 0, pcmFrame(320, 1)))
  await subscriber.waitForEvent('call.start', 'CAadmin')

  // The scrape counts the call live on the ingest port: one registry, one gateway.
  const metrics = await fetch(`${admin}/metrics`)
  t.equal(metrics.status, 200)
  t.match(await metrics.text(), /^rtaa_calls_active\{vendor="exotel"\} 1$/m)

  for (const path of ['/health', '/v1/ingest', '/v1/ingest/exotel']) {
    const refused = await refusedUpgrade(`ws://127.0.0.1:${adminPort}${path}?sample-rate=8000`)
    t.equal(refused.status, 404, `an upgrade to ${path} on the admin port is refused`)
  }
  t.ok(server.lines.items.some((line) => line.msg === 'upgrade refused: no WebSocket on the admin port' && line.level === 40))

  // The drain shows on the admin port's /ready, and the process closes it on the way out.
  server.child.kill('SIGTERM')
  await server.lines.waitFor((line) => line.msg === 'draining live calls', 'the drain')
  const draining = await fetch(`${admin}/ready`)
  t.equal(draining.status, 503)
  t.same(await draining.json(), { status: 'not_ready', reasons: ['shutting_down'] })
  client.send(exotelStrings.stop('CAadmin', 'MZCAadmin', 3))
  t.equal((await client.closed).code, 1000)
  t.equal(await server.exited, 0)
  await t.rejects(fetch(`${admin}/health`), 'the admin port is closed with the gateway')
})

t.test('the admin port honours METRICS_ALLOWLIST, must differ from PORT, and stops the process when taken', async (t) => {
  const dir = t.testdir()
  const { admin } = await startWithAdmin(t, dir, { METRICS_ALLOWLIST: '10.0.0.0/8' })
  const refused = await fetch(`${admin}/metrics`)
  t.equal(refused.status, 403)
  t.equal((await fetch(`${admin}/health`)).status, 200)

  const port = await freePort()
  const same = runServer(dir, { REDIS_URL: redis.url, PORT: String(port), ADMIN_PORT: String(port) })
  t.equal(await same.exited, 78)
  t.match(same.stderr(), /env\/ADMIN_PORT must differ from PORT/)

  // An admin port already taken stops the process as a taken ingest port does: one fatal line, exit 1.
  const taken = createServer().listen(port, '127.0.0.1')
  await once(taken, 'listening')
  t.teardown(() => taken.close())
  const busy = runServer(dir, { REDIS_URL: redis.url, HOST: '127.0.0.1', PORT: String(await freePort()), ADMIN_PORT: String(port) })
  t.equal(await busy.exited, 1)
  t.match(busy.lines.items.filter((line) => (line.level as number) >= 40), [{ level: 60, msg: 'cannot listen', err: { code: 'EADDRINUSE' } }])
  t.equal(busy.lines.items.filter((line) => (line.level as number) >= 40).length, 1)
})
