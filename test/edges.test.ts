import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { connect as connectTcp, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { connect as connectTls } from 'node:tls'
import t from 'tap'
import type { ClientOptions } from 'ws'
import { ProviderClient, refusedUpgrade } from './helpers/exotel.js'
import { startGateway, type Gateway, type LogLine } from './helpers/gateway.js'
import { inSeconds, signJwt } from './helpers/jwt.js'
import { TestRedis } from './helpers/redis-server.js'
import { runServer, startReplica } from './helpers/server-process.js'
import { selfSignedCertificate } from './helpers/tls.js'

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

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs rtaa-token as a user would: its own process and working directory, config from the environment. */
async function rtaaToken (args: string[], cwd: string, env: Record<string, string>): Promise<Run> {
  const bin = fileURLToPath(new URL('../bin/rtaa-token.mjs', import.meta.url))
  const child = spawn(process.execPath, [bin, ...args], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const [code] = await once(child, 'exit') as [number | null]
  return { code, stdout, stderr }
}

/** Opens a WebSocket and closes it again: the upgrade was admitted. */
async function upgrades (url: string, options: ClientOptions = {}): Promise<number> {
  const client = await ProviderClient.connect(url, options)
  client.close()
  return (await client.closed).code
}

function portOf (url: string): number {
  return Number(new URL(url).port)
}

t.test('a handshake whose headers dribble in is cut by the server at 10-11 s, over HTTP and TLS', async (t) => {
  const { cert, key } = selfSignedCertificate(t.testdir())
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

t.test('an IPv6 range admits an IPv4 client whose mapped address (::ffff:a.b.c.d) lies in it, in every CIDR list', async (t) => {
  t.test('AUTH_IP_ALLOWLIST', async (t) => {
    const mapped = await startGateway(t, redis.url, { AUTH_IP_ALLOWLIST: '::ffff:127.0.0.0/104' })
    t.equal(await upgrades(`${mapped.wsUrl}/v1/ingest`, { localAddress: '127.0.0.1' }), 1005, '::ffff:127.0.0.0/104 admits 127.0.0.1')
    const single = await startGateway(t, redis.url, { AUTH_IP_ALLOWLIST: '::ffff:127.0.0.1/128' })
    t.equal(await upgrades(`${single.wsUrl}/v1/ingest`, { localAddress: '127.0.0.1' }), 1005, '::ffff:127.0.0.1/128 admits 127.0.0.1')
    t.equal((await refusedUpgrade(`${single.wsUrl}/v1/ingest`, { localAddress: '127.0.0.2' })).status, 403, 'and not 127.0.0.2')
    const everyone = await startGateway(t, redis.url, { AUTH_IP_ALLOWLIST: '::/0' })
    t.equal(await upgrades(`${everyone.wsUrl}/v1/ingest`, { localAddress: '127.0.0.2' }), 1005, '::/0 admits everyone')
    // The start-up warning about allowlists that reach beyond loopback reads mapped ranges the same way.
    const beyondLoopback = (line: LogLine): boolean => String(line.msg).startsWith('AUTH_IP_ALLOWLIST admits addresses beyond loopback')
    t.notOk(mapped.logs.items.some(beyondLoopback), '::ffff:127.0.0.0/104 is loopback only')
    t.match(everyone.logs.items.find(beyondLoopback), { ranges: ['::/0'] }, '::/0 is not')
    const ipv6Only = await startGateway(t, redis.url, { AUTH_IP_ALLOWLIST: '2001:db8::/32' })
    t.equal((await refusedUpgrade(`${ipv6Only.wsUrl}/v1/ingest`, { localAddress: '127.0.0.1' })).status, 403, 'a range beyond ::ffff:0:0/96 admits no IPv4 client')
  })

  t.test('METRICS_ALLOWLIST', async (t) => {
    const mapped = await startGateway(t, redis.url, { METRICS_ALLOWLIST: '::ffff:127.0.0.0/104' })
    t.equal((await fetch(`${mapped.url}/metrics`)).status, 200)
    const ipv6Only = await startGateway(t, redis.url, { METRICS_ALLOWLIST: '2001:db8::/32' })
    t.equal((await fetch(`${ipv6Only.url}/metrics`)).status, 403)
  })

  t.test('TRUST_PROXY', async (t) => {
    for (const proxies of ['::ffff:127.0.0.2/128', '::/0', '0.0.0.0/0']) {
      const gateway = await startGateway(t, redis.url, { AUTH_IP_ALLOWLIST: '203.0.113.0/24', TRUST_PROXY: proxies })
      t.equal(await upgrades(`${gateway.wsUrl}/v1/ingest`, { localAddress: '127.0.0.2', headers: { 'x-forwarded-for': '203.0.113.7' } }), 1005,
        `${proxies} trusts the proxy at 127.0.0.2`)
      t.equal((await refusedUpgrade(`${gateway.wsUrl}/v1/ingest`, { localAddress: '127.0.0.2', headers: { 'x-forwarded-for': '198.51.100.9' } })).status, 403,
        `${proxies}: the forwarded address is the one checked`)
    }
  })
})

t.test('a CIDR that cannot be read stops the process with 78, naming the variable', async (t) => {
  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ AUTH_IP_ALLOWLIST: '::ffff:127.0.0.0/129' }, /env\/AUTH_IP_ALLOWLIST has "::ffff:127\.0\.0\.0\/129", which is not a CIDR/],
    // ipaddr.js reads 010 as octal: 010.0.0.0/8 would be 8.0.0.0/8.
    [{ TRUST_PROXY: '010.0.0.0/8' }, /env\/TRUST_PROXY has "010\.0\.0\.0\/8", which is not a CIDR/],
    [{ METRICS_ALLOWLIST: '0xa.0.0.0/8' }, /env\/METRICS_ALLOWLIST has "0xa\.0\.0\.0\/8", which is not a CIDR/]
  ]
  const dir = t.testdir()
  await Promise.all(bad.map(async ([env, message]) => {
    const server = runServer(dir, { REDIS_URL: redis.url, ...env })
    t.teardown(() => { server.child.kill('SIGKILL') })
    t.equal(await server.exited, 78, JSON.stringify(env))
    t.match(server.stderr(), message)
  }))
})

t.test('X-Forwarded-For from a trusted proxy must hold canonical addresses: anything else is a 400 before the upgrade', async (t) => {
  const gateway = await startGateway(t, redis.url, { TRUST_PROXY: '127.0.0.2/32,10.0.0.0/8', AUTH_IP_ALLOWLIST: '10.0.0.0/8,203.0.113.0/24,2001:db8::/32' })
  const url = `${gateway.wsUrl}/v1/ingest`
  const fromProxy = (forwardedFor: string): ClientOptions => ({ localAddress: '127.0.0.2', headers: { 'x-forwarded-for': forwardedFor } })
  const refusals = (): LogLine[] => gateway.logs.items.filter((line) => line.msg === 'request refused: X-Forwarded-For holds an address that is not canonical')

  // [header, the entry refused]. The first three are 10.1.2.3 to ipaddr.js, and were admitted by 10.0.0.0/8. Then
  // chains: a hop the client wrote before the proxy's, read as 10.0.0.1 and so believed to be a trusted proxy; a
  // client behind two trusted proxies.
  const cases: Array<[string, string]> = [['012.1.2.3', '012.1.2.3'], ['167837955', '167837955'], ['0xa.1.2.3', '0xa.1.2.3'],
    ['10.1.2', '10.1.2'], ['10.1.2.3 x', '10.1.2.3 x'], ['::ffff:012.1.2.3', '::ffff:012.1.2.3'], ['unknown', 'unknown'],
    ['203.0.113.7, 012.0.0.1', '012.0.0.1'], ['012.1.2.3, 10.0.0.1', '012.1.2.3']]
  for (const [forwardedFor, entry] of cases) {
    const before = refusals().length
    const refused = await refusedUpgrade(url, fromProxy(forwardedFor))
    t.equal(refused.status, 400, forwardedFor)
    t.match(JSON.parse(refused.body), { message: 'X-Forwarded-For holds an address that is not a canonical IPv4 or IPv6 address' })
    t.equal(refusals().length, before + 1, `${forwardedFor}: one log line`)
    t.match(refusals().at(-1), { level: 40, reason: 'forwarded_for_not_canonical', forwarded_for: entry, peer: '127.0.0.2' })
  }
  t.notOk(gateway.logs.items.some((line) => line.msg === 'authentication failed'), 'none of them reached authentication')

  for (const forwardedFor of ['10.1.2.3', '203.0.113.7, 10.0.0.1', '2001:db8::7', 'junk, 203.0.113.7']) {
    t.equal(await upgrades(url, fromProxy(forwardedFor)), 1005, `${forwardedFor} is admitted`)
  }
  t.equal((await refusedUpgrade(url, { localAddress: '127.0.0.3', headers: { 'x-forwarded-for': '012.1.2.3' } })).status, 403,
    'from a peer that is no proxy the header is ignored: 127.0.0.3 is checked, and refused')
})

t.test('a non-canonical X-Forwarded-For reads no /metrics either', async (t) => {
  const gateway = await startGateway(t, redis.url, { TRUST_PROXY: '127.0.0.1/32' })
  t.equal((await fetch(`${gateway.url}/metrics`, { headers: { 'x-forwarded-for': '012.1.2.3' } })).status, 400, '012.1.2.3 is not 10.1.2.3 in METRICS_ALLOWLIST')
  t.equal((await fetch(`${gateway.url}/metrics`, { headers: { 'x-forwarded-for': '10.1.2.3' } })).status, 200)
})

t.test('an upgrade to a route that is not a WebSocket is refused with 404 before the upgrade, never completed', async (t) => {
  const gateway = await startGateway(t, redis.url, { AUTH_IP_ALLOWLIST: '' })
  const refusals = (): LogLine[] => gateway.logs.items.filter((line) => line.msg === 'upgrade refused: no WebSocket at this route')
  for (const path of ['/health', '/ready', '/metrics', '/metrics?access_token=SECRET-1']) {
    const refused = await refusedUpgrade(`${gateway.wsUrl}${path}`)
    t.equal(refused.status, 404, path)
    t.match(JSON.parse(refused.body), { message: 'no WebSocket at this route' })
    t.match(refusals().at(-1), { level: 40, url: path.replace('SECRET-1', '%5Bredacted%5D') })
  }
  t.equal((await refusedUpgrade(`${gateway.wsUrl}/nowhere`)).status, 404, 'an unknown route stays a 404')
  t.notOk(gateway.logs.items.some((line) => String(line.msg).startsWith('closed incoming websocket connection')), 'no socket was opened')
  t.notMatch(JSON.stringify(gateway.logs.items), 'SECRET-1')
  t.equal((await fetch(`${gateway.url}/health`)).status, 200, 'plain requests are answered as before')
  t.equal((await fetch(`${gateway.url}/metrics`)).status, 200)
})

t.test('JWT_MAX_AGE_S caps how far ahead a token\'s exp may lie', async (t) => {
  const secret = 'edges-test-secret-of-at-least-32-bytes'
  const tokenFailures = (gateway: Gateway): LogLine[] => gateway.logs.items.filter((line) => line.msg === 'authentication failed')
  const bearer = (exp: number): ClientOptions => ({ headers: { authorization: `Bearer ${signJwt({ tenant_id: 'acme', exp }, secret)}` } })

  const byDefault = await startGateway(t, redis.url, { SUPPORT_NATIVE: 'true', JWT_SECRET: secret })
  const url = `${byDefault.wsUrl}/v1/ingest/native`
  const year3000 = Date.UTC(3000, 0, 1) / 1000
  for (const exp of [year3000, inSeconds(86_400 + 3600)]) {
    const refused = await refusedUpgrade(url, bearer(exp))
    t.equal(refused.status, 401, `exp ${exp}`)
    t.match(JSON.parse(refused.body), { message: 'invalid token' })
    t.match(tokenFailures(byDefault).at(-1), { level: 40, auth_method: 'jwt', reason: 'token_lifetime', status: 401, detail: /more than JWT_MAX_AGE_S \(86400 s\) ahead/ })
  }
  t.equal(await upgrades(url, bearer(inSeconds(86_400))), 1005, 'the whole default day is accepted')

  const short = await startGateway(t, redis.url, { SUPPORT_NATIVE: 'true', JWT_SECRET: secret, JWT_MAX_AGE_S: '600' })
  t.equal((await refusedUpgrade(`${short.wsUrl}/v1/ingest/native`, bearer(inSeconds(3600)))).status, 401, 'an hour is too long for 600 s')
  t.match(tokenFailures(short).at(-1), { reason: 'token_lifetime' })
  t.equal(await upgrades(`${short.wsUrl}/v1/ingest/native`, bearer(inSeconds(600))), 1005)
})

t.test('rtaa-token mints within JWT_MAX_AGE_S and refuses --expires-in beyond it', async (t) => {
  const dir = t.testdir()
  const env = { JWT_SECRET: 'edges-test-secret-of-at-least-32-bytes' }
  const lifetime = (run: Run): number => {
    const claims = JSON.parse(Buffer.from(run.stdout.trim().split('.')[1], 'base64url').toString()) as { iat: number, exp: number }
    return claims.exp - claims.iat
  }
  const [byDefault, short, tooLong] = await Promise.all([
    rtaaToken(['--tenant', 'acme'], dir, env),
    rtaaToken(['--tenant', 'acme'], dir, { ...env, JWT_MAX_AGE_S: '600' }),
    rtaaToken(['--tenant', 'acme', '--expires-in', '90000'], dir, env)
  ])
  t.equal(byDefault.code, 0, byDefault.stderr)
  t.equal(lifetime(byDefault), 3600, 'an hour by default')
  t.equal(short.code, 0, short.stderr)
  t.equal(lifetime(short), 600, 'or JWT_MAX_AGE_S when that is shorter')
  t.equal(tooLong.code, 2)
  t.match(tooLong.stderr, /--expires-in 90000 is beyond JWT_MAX_AGE_S \(86400\): the gateway would refuse the token/)
})
