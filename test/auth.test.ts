import t, { type Test } from 'tap'
import { TestRedis } from './helpers/redis-server.js'
import { startGateway, waitReady, type Gateway } from './helpers/gateway.js'
import { Subscriber } from './helpers/subscriber.js'
import { ProviderClient, basicAuth, exotelStrings, refusedUpgrade } from './helpers/exotel.js'
import { inSeconds, signJwt } from './helpers/jwt.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

const KEY = 'exotel-key'
const TOKEN = 'sEcr3t:with-colon'

/** Proves the socket is a working call, not just an open socket: start and stop reach Redis. */
async function callGoesThrough (t: Test, gateway: Gateway, client: ProviderClient, callSid: string): Promise<void> {
  const subscriber = await Subscriber.start(t, redis.url, gateway.prefix)
  client.send(exotelStrings.start(callSid))
  client.send(exotelStrings.stop(callSid, `MZ${callSid}`, 2))
  t.equal((await client.closed).code, 1000)
  await subscriber.waitForEvent('call.stop', callSid)
}

function authFailures (gateway: Gateway): Array<Record<string, unknown>> {
  return gateway.logs.items.filter((line) => line.msg === 'authentication failed')
}

t.test('Basic auth', async (t) => {
  // An empty allowlist, so only the credentials can let a client in.
  const gateway = await startGateway(t, redis.url, { BASIC_AUTH_CREDENTIALS: `other:x,${KEY}:${TOKEN}`, BASIC_AUTH_ACCOUNTS: `other=*,${KEY}=ACxxxxxxxxxxxxxxxxxxxxxxxx`, AUTH_IP_ALLOWLIST: '' })
  await waitReady(gateway)
  const url = `${gateway.wsUrl}/v1/ingest?sample-rate=8000`

  t.test('right credentials upgrade', async (t) => {
    const client = await ProviderClient.connect(url, { headers: { authorization: basicAuth(KEY, TOKEN) } })
    await callGoesThrough(t, gateway, client, 'CAbasic')
  })

  t.test('credentials in the URL, as Exotel is configured, are sent as Basic and accepted', async (t) => {
    const [, rest] = url.split('://')
    const client = await ProviderClient.connect(`ws://${KEY}:${encodeURIComponent(TOKEN)}@${rest}`)
    await callGoesThrough(t, gateway, client, 'CAbasicurl')
  })

  t.test('a wrong token, a wrong key and a malformed header get 401', async (t) => {
    for (const authorization of [basicAuth(KEY, 'wrong'), basicAuth('nobody', TOKEN), 'Basic !!!', basicAuth(KEY, TOKEN.slice(0, -1))]) {
      const refused = await refusedUpgrade(url, { headers: { authorization } })
      t.equal(refused.status, 401)
      t.equal(refused.headers['www-authenticate'], 'Basic realm="rtaa-ingest"')
    }
    const failures = authFailures(gateway)
    t.ok(failures.length >= 4)
    for (const line of failures) t.match(line, { level: 40, auth_method: 'basic', reason: /bad_credentials/, ip: '127.0.0.1' })
  })

  t.test('no credentials and an address outside the allowlist get 403', async (t) => {
    const refused = await refusedUpgrade(url)
    t.equal(refused.status, 403)
    t.match(JSON.parse(refused.body), { message: 'client address is not in the allowlist' })
  })

  t.test('a Bearer token gets 401 while no vendor takes JWT', async (t) => {
    const refused = await refusedUpgrade(url, { headers: { authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.x' } })
    t.equal(refused.status, 401)
    t.match(authFailures(gateway).at(-1), { auth_method: 'jwt', reason: 'method_not_accepted' })
  })

  t.test('no log line carries the credential; the key is named only as auth_key', async (t) => {
    const everything = JSON.stringify(gateway.logs.items)
    t.notMatch(everything, TOKEN)
    t.notMatch(everything, Buffer.from(`${KEY}:${TOKEN}`).toString('base64'))
    t.ok(everything.includes(`"auth_key":"${KEY}"`), 'a call\'s lines say which key it came with')
    t.notMatch(everything.replaceAll(`"auth_key":"${KEY}"`, ''), KEY, 'and nothing else does')
  })
})

t.test('Basic auth when no credentials are configured gets 401', async (t) => {
  const gateway = await startGateway(t, redis.url)
  const refused = await refusedUpgrade(`${gateway.wsUrl}/v1/ingest`, { headers: { authorization: basicAuth(KEY, TOKEN) } })
  t.equal(refused.status, 401)
  t.match(authFailures(gateway).at(-1), { auth_method: 'basic', reason: 'basic_disabled' })
})

t.test('IP allowlist', async (t) => {
  const gateway = await startGateway(t, redis.url, { AUTH_IP_ALLOWLIST: '127.0.0.1/32,::1/128' })
  await waitReady(gateway)
  const url = `${gateway.wsUrl}/v1/ingest`

  t.test('an allowed address upgrades', async (t) => {
    const client = await ProviderClient.connect(url, { localAddress: '127.0.0.1' })
    await callGoesThrough(t, gateway, client, 'CAip')
  })

  t.test('127.0.0.2 is loopback too, but not in 127.0.0.1/32: 403', async (t) => {
    const refused = await refusedUpgrade(url, { localAddress: '127.0.0.2' })
    t.equal(refused.status, 403)
    t.match(authFailures(gateway).at(-1), { level: 40, auth_method: 'ip', reason: 'ip_not_allowed', ip: '127.0.0.2' })
  })

  t.test('X-Forwarded-For from a peer that is not a trusted proxy is ignored', async (t) => {
    const refused = await refusedUpgrade(url, { localAddress: '127.0.0.2', headers: { 'x-forwarded-for': '127.0.0.1' } })
    t.equal(refused.status, 403)
    t.match(authFailures(gateway).at(-1), { ip: '127.0.0.2' })
  })
})

t.test('the default allowlist accepts loopback only', async (t) => {
  const gateway = await startGateway(t, redis.url)
  await waitReady(gateway)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`, { localAddress: '127.0.0.3' })
  await callGoesThrough(t, gateway, client, 'CAloopback')
  t.equal(gateway.app.config.AUTH_IP_ALLOWLIST, '127.0.0.0/8,::1/128')
})

t.test('behind a trusted proxy, the client is the X-Forwarded-For hop', async (t) => {
  const gateway = await startGateway(t, redis.url, { AUTH_IP_ALLOWLIST: '203.0.113.0/24', TRUST_PROXY: '127.0.0.2/32' })
  await waitReady(gateway)
  const url = `${gateway.wsUrl}/v1/ingest`

  const client = await ProviderClient.connect(url, { localAddress: '127.0.0.2', headers: { 'x-forwarded-for': '203.0.113.7' } })
  await callGoesThrough(t, gateway, client, 'CAproxied')

  // The hop the proxy appended is the one believed; what the client put before it is not.
  const spoofed = await refusedUpgrade(url, { localAddress: '127.0.0.2', headers: { 'x-forwarded-for': '203.0.113.7, 198.51.100.9' } })
  t.equal(spoofed.status, 403)
  t.match(authFailures(gateway).at(-1), { ip: '198.51.100.9' })

  const direct = await refusedUpgrade(url, { localAddress: '127.0.0.3', headers: { 'x-forwarded-for': '203.0.113.7' } })
  t.equal(direct.status, 403, 'the same header from an untrusted peer is ignored')
  t.match(authFailures(gateway).at(-1), { ip: '127.0.0.3' })
})

t.test('a token in the query of an unknown route reaches neither the log nor the answer', async (t) => {
  const gateway = await startGateway(t, redis.url)
  for (const path of ['/v1/ingest/natve', '/v1/ingest/native']) {
    const response = await fetch(`${gateway.url}${path}?access_token=SECRET-JWT-1&sample-rate=8000`, { method: 'POST' })
    t.equal(response.status, 404)
    t.notMatch(await response.text(), 'SECRET-JWT-1')
  }
  const logged = JSON.stringify(gateway.logs.items)
  t.notMatch(logged, 'SECRET-JWT-1')
  t.match(gateway.logs.items.findLast((line) => line.msg === 'route not found'), { url: '/v1/ingest/native?access_token=%5Bredacted%5D&sample-rate=8000' })
})

t.test('probes need no credentials', async (t) => {
  const gateway = await startGateway(t, redis.url, { AUTH_IP_ALLOWLIST: '' })
  const response = await fetch(`${gateway.url}/health`)
  t.equal(response.status, 200)
})

t.test('WWW-Authenticate names the scheme that failed, or those the route takes', async (t) => {
  const secret = 'a-jwt-secret-of-at-least-32-characters'
  const gateway = await startGateway(t, redis.url, {
    SUPPORT_NATIVE: 'true', JWT_SECRET: secret, BASIC_AUTH_CREDENTIALS: `${KEY}:${TOKEN}`, BASIC_AUTH_ACCOUNTS: `${KEY}=*`, AUTH_IP_ALLOWLIST: ''
  })
  const bearer = `Bearer ${signJwt({ tenant_id: 't', exp: inSeconds(60) }, 'another-secret-of-at-least-32-characters')}`
  const basic = basicAuth(KEY, 'wrong')
  const cases: Array<[string, string, string | undefined, string]> = [
    ['a bad Bearer token on the native route', '/v1/ingest/native', bearer, 'Bearer realm="rtaa-ingest", error="invalid_token"'],
    ['a bad Bearer token on /v1/ingest', '/v1/ingest', bearer, 'Bearer realm="rtaa-ingest", error="invalid_token"'],
    ['bad Basic credentials on the Exotel route', '/v1/ingest/exotel', basic, 'Basic realm="rtaa-ingest"'],
    ['bad Basic credentials on /v1/ingest', '/v1/ingest', basic, 'Basic realm="rtaa-ingest"'],
    ['no credential on the native route', '/v1/ingest/native', undefined, 'Bearer realm="rtaa-ingest"'],
    ['Basic on the native route', '/v1/ingest/native', basicAuth(KEY, TOKEN), 'Bearer realm="rtaa-ingest"'],
    ['a Bearer token on the Exotel route', '/v1/ingest/exotel', bearer, 'Basic realm="rtaa-ingest"'],
    ['another scheme on /v1/ingest', '/v1/ingest', 'Digest username="x"', 'Basic realm="rtaa-ingest", Bearer realm="rtaa-ingest"']
  ]
  for (const [name, path, authorization, challenge] of cases) {
    const refused = await refusedUpgrade(`${gateway.wsUrl}${path}`, authorization === undefined ? {} : { headers: { authorization } })
    t.equal(refused.status, 401, name)
    t.equal(refused.headers['www-authenticate'], challenge, name)
  }
})
