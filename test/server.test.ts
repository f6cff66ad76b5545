import { once } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { TestRedis, freePort } from './helpers/redis-server.js'
import { startListenedGateway } from './helpers/gateway.js'
import { Subscriber } from './helpers/subscriber.js'
import { ProviderClient, exotelStrings, pcmFrame, refusedUpgrade } from './helpers/exotel.js'
import { runServer } from './helpers/server-process.js'
import { selfSignedCertificate } from './helpers/tls.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

t.test('a bad config value stops the process with status 78 and names the variable', async (t) => {
  const server = runServer(t.testdir(), { EXOTEL_DEFAULT_SAMPLE_RATE: '11025' })
  t.equal(await server.exited, 78)
  t.match(server.stderr(), /rtaa-ingest: invalid configuration: .*EXOTEL_DEFAULT_SAMPLE_RATE/)
})

t.test('the server reads .env.local over .env, logs to LOG_FILE, and on SIGTERM ends live calls and exits 0', async (t) => {
  const dir = t.testdir()
  const port = await freePort()
  writeFileSync(join(dir, '.env'), `SUPPORT_EXOTEL=false\nREDIS_PREFIX=from-dotenv:\nPORT=${port}\n`)
  writeFileSync(join(dir, '.env.local'), 'SUPPORT_EXOTEL=true\nREDIS_PREFIX=from-local:\n')
  const logFile = join(dir, 'logs', 'gateway.log')
  const server = runServer(dir, { REDIS_URL: redis.url, HOST: '127.0.0.1', LOG_FILE: logFile, DRAIN_TIMEOUT_MS: '0' })
  t.teardown(() => server.child.kill('SIGKILL'))
  await server.lines.waitFor((line) => line.msg === 'redis connected', 'redis connected', 30_000)
  await server.lines.waitFor((line) => String(line.msg).startsWith('Server listening'), 'listening', 30_000)

  const subscriber = await Subscriber.start(t, redis.url, 'from-local:')
  const client = await ProviderClient.connect(`ws://127.0.0.1:${port}/v1/ingest?sample-rate=16000`)
  client.send(exotelStrings.start('CAserver'))
  client.send(exotelStrings.media('MZCAserver', 2, 1, 0, pcmFrame(640, 1)))
  await subscriber.published.waitFor(({ channel }) => channel === 'from-local:audio:{~ACxxxxxxxxxxxxxxxxxxxxxxxx:CAserver}')

  server.child.kill('SIGTERM')
  t.same(await client.closed, { code: 1001, reason: 'server shutting down' })
  t.match(await subscriber.waitForEvent('call.stop', 'CAserver'), { reason: 'shutdown', frames: 1, bytes: 640 })
  t.equal(await server.exited, 0)

  const fileLines = readFileSync(logFile, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>)
  const exotelLines = readFileSync(logFile, 'utf8').split('\n').filter((line) => line.includes('exotel'))
  t.ok(exotelLines.some((line) => line.includes('"call started"')), 'grep exotel finds the call start')
  t.match(fileLines.find((line) => line.msg === 'call ended'), { interaction_id: 'CAserver', vendor: 'exotel', reason: 'shutdown', frames: 1 })
  t.match(fileLines.find((line) => line.msg === 'shutting down: draining live calls'), { signal: 'SIGTERM', drain_timeout_ms: 0 })
})

t.test('SIGTERM drains: /ready fails, new calls are refused, live calls finish; one that outlives DRAIN_TIMEOUT_MS gets 1001', async (t) => {
  const port = await freePort()
  const server = runServer(t.testdir(), { REDIS_URL: redis.url, HOST: '127.0.0.1', PORT: String(port), REDIS_PREFIX: 'drain:', DRAIN_TIMEOUT_MS: '1500' })
  t.teardown(() => server.child.kill('SIGKILL'))
  await server.lines.waitFor((line) => line.msg === 'redis connected', 'redis connected', 30_000)
  await server.lines.waitFor((line) => String(line.msg).startsWith('Server listening'), 'listening', 30_000)
  const subscriber = await Subscriber.start(t, redis.url, 'drain:')
  const url = `ws://127.0.0.1:${port}/v1/ingest?sample-rate=8000`
  const finishing = await ProviderClient.connect(url)
  finishing.send(exotelStrings.start('CAfinishes'))
  const lingering = await ProviderClient.connect(url)
  lingering.send(exotelStrings.start('CAlingers'))
  await subscriber.waitForEvent('call.start', 'CAlingers')
  await subscriber.waitForEvent('call.start', 'CAfinishes')

  server.child.kill('SIGTERM')
  await server.lines.waitFor((line) => line.msg === 'draining live calls', 'drain started')
  const ready = await fetch(`http://127.0.0.1:${port}/ready`)
  t.equal(ready.status, 503, '/ready fails at once')
  t.same(await ready.json(), { status: 'not_ready', reasons: ['shutting_down'] })
  const refused = await refusedUpgrade(url)
  t.equal(refused.status, 503, 'a new call is refused')
  t.equal(refused.headers['retry-after'], '5')

  // A live call goes on during the drain, and ends as it would have.
  finishing.send(exotelStrings.media('MZCAfinishes', 2, 1, 0, pcmFrame(320, 1)))
  finishing.send(exotelStrings.stop('CAfinishes', 'MZCAfinishes', 3))
  t.equal((await finishing.closed).code, 1000)
  t.match(await subscriber.waitForEvent('call.stop', 'CAfinishes'), { reason: 'callended', frames: 1 })

  t.same(await lingering.closed, { code: 1001, reason: 'server shutting down' }, 'the call that outlives the drain gets 1001')
  t.match(await subscriber.waitForEvent('call.stop', 'CAlingers'), { reason: 'shutdown' })
  t.equal(await server.exited, 0)
  t.ok(server.lines.items.some((line) => line.msg === 'drain timeout: closing the calls still live'))
})

t.test('with TLS_CERT_FILE and TLS_KEY_FILE the gateway serves wss and https', async (t) => {
  const { cert, key } = selfSignedCertificate(t.testdir())
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { TLS_CERT_FILE: cert, TLS_KEY_FILE: key })
  t.match(gateway.wsUrl, /^wss:/)

  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`, { ca: readFileSync(cert) })
  client.send(exotelStrings.start('CAtls'))
  client.send(exotelStrings.media('MZCAtls', 2, 1, 0, pcmFrame(320, 1)))
  client.send(exotelStrings.stop('CAtls', 'MZCAtls', 3))
  t.equal((await client.closed).code, 1000)
  t.match(await subscriber.waitForEvent('call.stop', 'CAtls'), { frames: 1 })
})

t.test('a LOG_FILE that cannot be written stops the process naming the variable', async (t) => {
  const dir = t.testdir()
  writeFileSync(join(dir, 'not-a-directory'), '')
  const server = runServer(dir, { LOG_FILE: join(dir, 'not-a-directory', 'gateway.log') })
  t.equal(await server.exited, 78)
  t.match(server.stderr(), /rtaa-ingest: invalid configuration: env\/LOG_FILE cannot be opened for appending/)
})

t.test('an unreadable TLS file stops the process naming the variable', async (t) => {
  const server = runServer(t.testdir(), { TLS_CERT_FILE: '/nonexistent/cert.pem', TLS_KEY_FILE: '/nonexistent/key.pem' })
  t.equal(await server.exited, 78)
  t.match(server.stderr(), /TLS_CERT_FILE cannot be read/)
})

t.test('a port already taken: one fatal line and exit 1, no warning about a Redis never reached', async (t) => {
  const port = await freePort()
  const taken = createServer().listen(port, '127.0.0.1')
  await once(taken, 'listening')
  t.teardown(() => taken.close())
  for (const redisUrl of [redis.url, 'redis://127.0.0.1:1']) {
    const server = runServer(t.testdir(), { REDIS_URL: redisUrl, HOST: '127.0.0.1', PORT: String(port) })
    t.teardown(() => server.child.kill('SIGKILL'))
    t.equal(await server.exited, 1, redisUrl)
    const loud = server.lines.items.filter((line) => (line.level as number) >= 40)
    t.match(loud, [{ level: 60, msg: 'cannot listen', err: { code: 'EADDRINUSE' } }], `${redisUrl}: the fatal line only`)
    t.equal(loud.length, 1)
    t.equal(server.stderr(), '')
  }
})
