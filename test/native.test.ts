import { generateKeyPairSync } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { TestRedis } from './helpers/redis-server.js'
import { startListenedGateway } from './helpers/gateway.js'
import { ProviderClient, pcmFrame, refusedUpgrade } from './helpers/exotel.js'
import { inSeconds, signJwt } from './helpers/jwt.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

const SECRET = 'a-test-secret-that-is-at-least-32-bytes'
const NATIVE = { SUPPORT_NATIVE: 'true', JWT_SECRET: SECRET }
const token = (claims: Record<string, unknown> = {}): string => signJwt({ tenant_id: 'tenant-a', sub: 'bot-1', exp: inSeconds(60), ...claims }, SECRET)
const bearer = (jwt: string): { headers: Record<string, string> } => ({ headers: { authorization: `Bearer ${jwt}` } })

for (const path of ['/v1/ingest/native', '/v1/ingest']) {
  t.test(`a native call through ${path}: ack, binary PCM byte for byte, stop`, async (t) => {
    const { gateway, subscriber } = await startListenedGateway(t, redis.url, NATIVE)
    const id = `native-${path.length}`
    const frames = [pcmFrame(960, 1), pcmFrame(960, 2), pcmFrame(960, 3)]
    const client = await ProviderClient.connect(`${gateway.wsUrl}${path}`, bearer(token()))
    client.send({ event: 'start', interaction_id: id, sample_rate: 24000, encoding: 'pcm_s16le', channels: 1, metadata: { queue: 'sales', agent: 7 } })
    t.same(JSON.parse(await client.received.waitFor(() => true)), { event: 'started', interaction_id: id }, 'start is acknowledged')
    for (const frame of frames) client.ws.send(frame, { binary: true })
    client.send({ event: 'stop' })
    t.same(await client.closed, { code: 1000, reason: 'stream stopped' })

    const stop = await subscriber.waitForEvent('call.stop', id)
    t.match(subscriber.events(id)[0], { type: 'call.start', vendor: 'native', tenant_id: 'tenant-a', stream_id: null, sample_rate: 24000, custom_parameters: { queue: 'sales', agent: 7 } })
    t.ok(Buffer.concat(subscriber.frames(id).map((f) => f.pcm)).equals(Buffer.concat(frames)))
    t.match(subscriber.frames(id).map((f) => f.header), [{ seq: 1, timestamp_ms: 0, vendor_seq: null }, { seq: 2, timestamp_ms: 20 }, { seq: 3, timestamp_ms: 40 }])
    t.match(stop, { vendor: 'native', reason: 'stopped', frames: 3, bytes: 2880 })
  })
}

t.test('sample_rate defaults to 24000 and accepts 48000; anything else gets an error message, then 1007', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, NATIVE)
  for (const [rate, expected] of [[undefined, 24000], [48000, 48000], [8000, 8000]] as const) {
    const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/native`, bearer(token()))
    client.send({ event: 'start', interaction_id: `rate-${rate}`, ...(rate === undefined ? {} : { sample_rate: rate }) })
    t.match(await subscriber.waitForEvent('call.start', `rate-${rate}`), { sample_rate: expected })
    client.close()
  }
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/native`, bearer(token()))
  client.send({ event: 'start', interaction_id: 'rate-44100', sample_rate: 44100 })
  t.match(JSON.parse(await client.received.waitFor(() => true)), { event: 'error', code: 'invalid_message', message: /^invalid start message at \/sample_rate/ })
  t.equal((await client.closed).code, 1007)
})

t.test('bad input gets an error message naming the problem before the close', async (t) => {
  const { gateway } = await startListenedGateway(t, redis.url, NATIVE)
  const cases: Array<[string, (client: ProviderClient) => void, number, string]> = [
    ['audio before start', (c) => c.ws.send(pcmFrame(320, 1), { binary: true }), 1008, 'protocol_violation'],
    ['half a sample', (c) => { c.send({ event: 'start', interaction_id: 'odd' }); c.ws.send(Buffer.alloc(321), { binary: true }) }, 1007, 'invalid_message'],
    ['a second start', (c) => { c.send({ event: 'start', interaction_id: 'twice' }); c.send({ event: 'start', interaction_id: 'twice' }) }, 1008, 'protocol_violation'],
    ['not JSON', (c) => c.send('start please'), 1007, 'invalid_message']
  ]
  for (const [name, act, code, errorCode] of cases) {
    const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/native`, bearer(token()))
    act(client)
    const error = await client.received.waitFor((text) => text.includes('"error"'), name)
    t.match(JSON.parse(error), { event: 'error', code: errorCode, message: /\w/ }, name)
    t.equal((await client.closed).code, code, name)
  }
})

t.test('JWT verification at the upgrade', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { ...NATIVE, JWT_ISSUER: 'rtaa-issuer', JWT_AUDIENCE: 'rtaa-ingest' })
  const url = `${gateway.wsUrl}/v1/ingest/native`
  const good = { iss: 'rtaa-issuer', aud: 'rtaa-ingest' }
  const refused: Array<[string, string, string, RegExp?]> = [
    ['expired', token({ ...good, exp: inSeconds(-60) }), 'token_expired'],
    ['not yet valid', token({ ...good, nbf: inSeconds(600) }), 'token_inactive'],
    ['signed with another secret', signJwt({ ...good, tenant_id: 't', exp: inSeconds(60) }, 'another-secret-that-is-32-bytes-long!!'), 'token_invalid', /signature is invalid/],
    ['alg none', signJwt({ ...good, tenant_id: 't', exp: inSeconds(60) }, '', 'none'), 'token_unsigned'],
    ['a header claiming RS256', signJwt({ ...good, tenant_id: 't', exp: inSeconds(60) }, SECRET, 'HS256', 'RS256'), 'token_algorithm_refused'],
    ['without exp', signJwt({ ...good, tenant_id: 't' }, SECRET), 'token_invalid', /The exp claim is required/],
    ['without tenant_id', signJwt({ ...good, exp: inSeconds(60) }, SECRET), 'token_invalid', /The tenant_id claim is required/],
    ['from another issuer', token({ ...good, iss: 'someone-else' }), 'token_invalid', /iss claim value is not allowed/],
    ['for another audience', token({ ...good, aud: 'another-service' }), 'token_invalid', /aud claim value is not allowed/],
    ['without iss, when JWT_ISSUER is set', token({ aud: 'rtaa-ingest' }), 'token_invalid', /The iss claim is required/],
    ['without aud, when JWT_AUDIENCE is set', token({ iss: 'rtaa-issuer' }), 'token_invalid', /The aud claim is required/],
    ['malformed', 'not.a.jwt', 'token_invalid', /not a valid base64url/]
  ]
  for (const [name, jwt, reason, detail] of refused) {
    const response = await refusedUpgrade(url, bearer(jwt))
    t.equal(response.status, 401, name)
    t.match(gateway.logs.items.findLast((line) => line.msg === 'authentication failed'), { auth_method: 'jwt', reason, status: 401, ...(detail === undefined ? {} : { detail }) }, name)
  }
  t.equal((await refusedUpgrade(url)).status, 401, 'no token at all')
  t.match(gateway.logs.items.findLast((line) => line.msg === 'authentication failed'), { auth_method: 'ip', reason: 'credentials_required' })

  // A token in the query, for clients that cannot set headers; it never reaches a log line.
  const queryToken = token(good)
  const accepted = await ProviderClient.connect(url, bearer(token(good)))
  accepted.close()
  const client = await ProviderClient.connect(`${url}?access_token=${queryToken}`)
  client.send({ event: 'start', interaction_id: 'via-query' })
  client.send({ event: 'stop' })
  await client.closed
  t.match(await subscriber.waitForEvent('call.start', 'via-query'), { tenant_id: 'tenant-a' })
  const logged = JSON.stringify(gateway.logs.items)
  t.notMatch(logged, queryToken.split('.')[2], 'the token is not logged')
  t.match(logged, 'access_token=%5Bredacted%5D')
})

t.test('RS256 and ES256 tokens verify against JWT_PUBLIC_KEY_FILE', async (t) => {
  const dir = t.testdir()
  for (const [alg, pair] of [
    ['RS256', generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ['ES256', generateKeyPairSync('ec', { namedCurve: 'prime256v1' })]
  ] as const) {
    const keyFile = join(dir, `${alg}.pem`)
    writeFileSync(keyFile, pair.publicKey.export({ type: 'spki', format: 'pem' }))
    const { gateway, subscriber } = await startListenedGateway(t, redis.url, { SUPPORT_NATIVE: 'true', JWT_PUBLIC_KEY_FILE: keyFile })
    const claims = { tenant_id: `tenant-${alg}`, exp: inSeconds(60) }
    const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`, bearer(signJwt(claims, pair.privateKey, alg)))
    client.send({ event: 'start', interaction_id: `call-${alg}` })
    t.match(await subscriber.waitForEvent('call.start', `call-${alg}`), { vendor: 'native', tenant_id: `tenant-${alg}` }, alg)
    client.close()
    const hs = await refusedUpgrade(`${gateway.wsUrl}/v1/ingest`, bearer(signJwt(claims, 'x'.repeat(32))))
    t.equal(hs.status, 401, `${alg}: an HS256 token is refused when a public key is configured`)
  }
})

t.test('native refuses Basic and IP-allowlisted clients, and Exotel refuses JWT', async (t) => {
  const { gateway } = await startListenedGateway(t, redis.url, { ...NATIVE, BASIC_AUTH_CREDENTIALS: 'key:token', BASIC_AUTH_ACCOUNTS: 'key=*' })
  const basic = { headers: { authorization: `Basic ${Buffer.from('key:token').toString('base64')}` } }
  t.equal((await refusedUpgrade(`${gateway.wsUrl}/v1/ingest/native`, basic)).status, 401)
  t.match(gateway.logs.items.findLast((line) => line.msg === 'authentication failed'), { auth_method: 'basic', reason: 'method_not_accepted' })
  t.equal((await refusedUpgrade(`${gateway.wsUrl}/v1/ingest/exotel`, bearer(token()))).status, 401)
  t.match(gateway.logs.items.findLast((line) => line.msg === 'authentication failed'), { auth_method: 'jwt', reason: 'method_not_accepted' })
})
