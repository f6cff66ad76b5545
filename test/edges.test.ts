import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { connect as connectTcp, type Socket } from 'node:net'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { connect as connectTls } from 'node:tls'
import t from 'tap'
import { ProviderClient, refusedUpgrade } from './helpers/exotel.js'
import { startGateway } from './helpers/gateway.js'
import { TestRedis } from './helpers/redis-server.js'
import { startReplica } from './helpers/server-process.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

/** How a connection that never finishes its request headers ended. */
interface Dribbled {
  /** From the connection's start (after TLS, if any) to its close. */
  elapsedMs: number
  received: string
}

/**
 * Sends a request's headers a byte a second and never finishes them, as a slowloris does. The client never closes,
 * so the close it waits for is the server's.
 */
async function dribbleHeaders (socket: Socket, ready: string): Promise<Dribbled> {
  await once(socket, ready)
  const started = performance.now()
  let received = ''
  socket.on('data', (chunk: Buffer) => { received += chunk.toString() })
  socket.on('error', () => {}) // a reset after the server's answer is the server closing too
  socket.write('GET /v1/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ')
  const dribble = setInterval(() => socket.write('a'), 1000)
  await once(socket, 'close')
  clearInterval(dribble)
  return { elapsedMs: performance.now() - started, received }
}

function portOf (url: string): number {
  return Number(new URL(url).port)
}

t.test('a handshake whose headers dribble in is cut by the server at 10-11 s, over HTTP and TLS', async (t) => {
  const dir = t.testdir()
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
  const [plain, tls] = await Promise.all([
    startReplica(t, { REDIS_URL: redis.url }),
    startReplica(t, { REDIS_URL: redis.url, TLS_CERT_FILE: cert, TLS_KEY_FILE: key })
  ])
  const outcomes = await Promise.all([
    dribbleHeaders(connectTcp(portOf(plain.url), '127.0.0.1'), 'connect'),
    dribbleHeaders(connectTls({ port: portOf(tls.url), host: '127.0.0.1', rejectUnauthorized: false }), 'secureConnect')
  ])
  for (const [name, outcome] of [['HTTP', outcomes[0]], ['TLS', outcomes[1]]] as const) {
    t.ok(outcome.elapsedMs >= 9_500, `${name}: not before the 10 s timeout (${Math.round(outcome.elapsedMs)} ms)`)
    t.ok(outcome.elapsedMs < 15_000, `${name}: closed soon after it, not at Node's 30 s check (${Math.round(outcome.elapsedMs)} ms)`)
    t.match(outcome.received, /^HTTP\/1\.1 408 /, `${name}: the server answered 408 and closed`)
  }
})

t.test('sample-rate must be written exactly 8000, 16000 or 24000: anything else is a 400 before the upgrade', async (t) => {
  const gateway = await startGateway(t, redis.url)
  const refusals = (): unknown[] => gateway.logs.items.filter((line) => line.msg === 'upgrade refused: bad request')
  for (const path of ['/v1/ingest', '/v1/ingest/exotel']) {
    for (const query of ['sample-rate=0x3E80', 'sample-rate=16000.0', 'sample-rate=1.6e4', 'sample-rate=%2B16000', 'sample-rate=016000',
      'sample-rate=%2016000', 'sample-rate=', 'sample-rate=44100', 'sample_rate=0x3E80', 'sample-rate=8000&sample-rate=8000']) {
      const before = refusals().length
      const refused = await refusedUpgrade(`${gateway.wsUrl}${path}?${query}`)
      t.equal(refused.status, 400, `${path}?${query}`)
      t.match(JSON.parse(refused.body), { message: /^sample-rate must be one of 8000, 16000, 24000/ })
      t.equal(refusals().length, before + 1, `${path}?${query}: one log line`)
      t.match(refusals().at(-1), { level: 40, vendor: 'exotel', reason: /^sample-rate must be one of 8000, 16000, 24000; got / })
    }
    for (const query of ['sample-rate=8000', 'sample-rate=16000', 'sample_rate=24000', '']) {
      const client = await ProviderClient.connect(`${gateway.wsUrl}${path}?${query}`)
      client.close()
      t.equal((await client.closed).code, 1005, `${path}?${query} upgrades`)
    }
  }
})
