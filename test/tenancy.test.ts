import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import type { CallStartEvent } from '../src/bus/call-events.js'
import { twilioSignature } from '../src/vendors/twilio/twilio-signature.js'
import { TestRedis } from './helpers/redis-server.js'
import { startGateway, startListenedGateway, waitReady } from './helpers/gateway.js'
import { ProviderClient, basicAuth, exotelStrings, pcmFrame } from './helpers/exotel.js'
import { inSeconds, signJwt } from './helpers/jwt.js'
import { scrape } from './helpers/metrics.js'
import { startReplica } from './helpers/server-process.js'
import { Subscriber } from './helpers/subscriber.js'
import { TcpProxy } from './helpers/tcp-proxy.js'

/*
 * Each attack the tenancy issue found, tried again: two gateway replicas, each a process of its own, on one real
 * redis-server.
 */

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

/** Exotel's start, naming an account (or none). */
function exotelStart (callSid: string, accountSid: string | null): Record<string, unknown> {
  const message = exotelStrings.start(callSid)
  const { account_sid: _named, ...start } = message.start
  return { ...message, start: accountSid === null ? start : { ...start, account_sid: accountSid } }
}

/** Redis's own report that `key` had `event` ('del', 'expired'): keyspace notifications, no polling. */
async function keyEvent (t: Test, event: 'del' | 'expired', key: string): Promise<{ happened: Promise<void> }> {
  const listener = new Redis(redis.url)
  t.teardown(() => listener.disconnect())
  await listener.config('SET', 'notify-keyspace-events', 'Egx')
  const happened = new Promise<void>((resolve) => listener.on('message', (_channel: string, name: string) => { if (name === key) resolve() }))
  await listener.subscribe(`__keyevent@0__:${event}`)
  return { happened }
}

const BASIC = {
  BASIC_AUTH_CREDENTIALS: 'keyB:tokenB-secret,keyX:tokenX-secret,keyBC:tokenBC-secret,keyAny:tokenAny-secret',
  BASIC_AUTH_ACCOUNTS: 'keyB=ACB,keyX=ACX,keyBC=ACB|ACC,keyAny=*',
  AUTH_IP_ALLOWLIST: ''
}
const as = (key: string): { headers: { authorization: string } } => ({ headers: { authorization: basicAuth(key, `token${key.slice(3)}-secret`) } })

t.test('injection across tenants: the same interaction_id from another tenant is another call, on its own channels', async (t) => {
  const prefix = 'inject:'
  const secret = 'tenancy-test-secret-of-32-bytes-at-least'
  const [replicaA, replicaB] = await Promise.all([
    startReplica(t, { REDIS_URL: redis.url, REDIS_PREFIX: prefix, ...BASIC }),
    startReplica(t, { REDIS_URL: redis.url, REDIS_PREFIX: prefix, SUPPORT_NATIVE: 'true', JWT_SECRET: secret })
  ])
  const subscriber = await Subscriber.start(t, redis.url, prefix)

  // Tenant ACB's call on replica A.
  const victim = await ProviderClient.connect(`${replicaA.wsUrl}/v1/ingest?sample-rate=8000`, as('keyB'))
  victim.send(exotelStart('CAshared', 'ACB'))
  const victimFrames = [0, 1, 2, 3, 4].map((i) => pcmFrame(1600, i))
  for (const [i, pcm] of victimFrames.slice(0, 3).entries()) victim.send(exotelStrings.media('MZCAshared', i + 2, i + 1, i * 100, pcm))
  const victimStart = await subscriber.waitForEvent('call.start', 'CAshared') as CallStartEvent

  // Tenant ACA, holding a native JWT, starts the same id on replica B; the start's own tenant field changes nothing.
  const attacker = await ProviderClient.connect(`${replicaB.wsUrl}/v1/ingest`, { headers: { authorization: `Bearer ${signJwt({ tenant_id: 'ACA', exp: inSeconds(60) }, secret)}` } })
  attacker.send({ event: 'start', interaction_id: 'CAshared', sample_rate: 8000, tenant_id: 'ACB' })
  t.equal(await attacker.received.waitFor(() => true), JSON.stringify({ event: 'started', interaction_id: 'CAshared' }))
  const attackerFrames = [7, 8].map((i) => pcmFrame(1600, i))
  for (const pcm of attackerFrames) attacker.ws.send(pcm, { binary: true })
  attacker.send({ event: 'stop', reason: 'injected' })
  t.equal((await attacker.closed).code, 1000)

  for (const [i, pcm] of victimFrames.slice(3).entries()) victim.send(exotelStrings.media('MZCAshared', i + 5, i + 4, (i + 3) * 100, pcm))
  victim.send(exotelStrings.stop('CAshared', 'MZCAshared', 9))
  t.equal((await victim.closed).code, 1000)
  await subscriber.published.waitFor(({ message }) => message.includes('"call.stop"') && message.includes('"tenant_id":"ACB"'), 'the victim\'s call.stop')

  const starts = subscriber.events('CAshared').filter((event) => event.type === 'call.start') as CallStartEvent[]
  t.same(starts.map((event) => event.tenant_id).sort(), ['ACA', 'ACB'], 'two calls, one per tenant')
  const attackerStart = starts.find((event) => event.tenant_id === 'ACA') as CallStartEvent
  t.equal(victimStart.audio_channel, `${prefix}audio:{ACB:CAshared}`)
  t.equal(attackerStart.audio_channel, `${prefix}audio:{ACA:CAshared}`)

  const onVictim = subscriber.framesOn(victimStart.audio_channel as string)
  t.same(onVictim.map(({ header }) => header.seq), [1, 2, 3, 4, 5], 'the victim\'s seq runs on, never restarted')
  t.ok(onVictim.every(({ header, pcm }, i) => header.tenant_id === 'ACB' && pcm.equals(victimFrames[i])), 'the victim\'s channel holds its own audio, byte for byte')
  const onAttacker = subscriber.framesOn(attackerStart.audio_channel as string)
  t.ok(onAttacker.length === 2 && onAttacker.every(({ header, pcm }, i) => header.tenant_id === 'ACA' && pcm.equals(attackerFrames[i])), 'the attacker\'s audio is on its own channel')
  const stops = subscriber.events('CAshared').filter((event) => event.type === 'call.stop')
  t.match(stops.find((event) => event.tenant_id === 'ACA'), { reason: 'injected', frames: 2 })
  t.match(stops.find((event) => event.tenant_id === 'ACB'), { reason: 'callended', frames: 5 }, 'the attacker\'s stop ended only its own call')
})

t.test('playback hijack: a stream with another account\'s call_sid hears none of its bot audio and touches none of its events', async (t) => {
  const prefix = 'hijack:'
  const [replicaA, replicaB] = await Promise.all([
    startReplica(t, { REDIS_URL: redis.url, REDIS_PREFIX: prefix, ...BASIC }),
    startReplica(t, { REDIS_URL: redis.url, REDIS_PREFIX: prefix, ...BASIC })
  ])
  const subscriber = await Subscriber.start(t, redis.url, prefix)
  const owner = await ProviderClient.connect(`${replicaA.wsUrl}/v1/ingest/exotel?sample-rate=8000`, as('keyB'))
  owner.send(exotelStart('CAvoice', 'ACB'))
  const ownerStart = await subscriber.waitForEvent('call.start', 'CAvoice') as CallStartEvent

  // Naming the owner's account with its own key is refused outright.
  const pretender = await ProviderClient.connect(`${replicaB.wsUrl}/v1/ingest/exotel?sample-rate=8000`, as('keyX'))
  pretender.send(exotelStart('CAvoice', 'ACB'))
  t.same(await pretender.closed, { code: 1008, reason: 'account ACB is not one this credential may stream for' })

  // With its own account it is a call of its own.
  const impostor = await ProviderClient.connect(`${replicaB.wsUrl}/v1/ingest/exotel?sample-rate=8000`, as('keyX'))
  impostor.send(exotelStart('CAvoice', 'ACX'))
  const impostorStart = await subscriber.published.waitFor(({ message }) => message.includes('"call.start"') && message.includes('"tenant_id":"ACX"'))
  const { playback_channel: impostorChannel } = JSON.parse(impostorStart.message.toString()) as CallStartEvent

  const worker = new Redis(redis.url)
  t.teardown(() => worker.disconnect())
  t.same(await worker.pubsub('NUMSUB', ownerStart.playback_channel), [ownerStart.playback_channel, 1], 'one socket, the owner\'s, is subscribed to its playback')
  const header = Buffer.from(JSON.stringify({ sample_rate: 8000 }))
  const length = Buffer.alloc(4)
  length.writeUInt32BE(header.length)
  await worker.publish(ownerStart.playback_channel, Buffer.concat([length, header, pcmFrame(3200, 1)]))
  await worker.publish(ownerStart.playback_channel, JSON.stringify({ type: 'mark', name: 'said' }))
  t.match(await owner.received.waitFor((text) => text.includes('"mark"')), /"name":"said"/, 'the owner gets the bot audio and its mark')
  t.ok(owner.received.items.some((text) => text.includes('"media"')))
  // Published after the owner's: had the impostor been subscribed there, it would have heard that first.
  await worker.publish(impostorChannel, JSON.stringify({ type: 'mark', name: 'own' }))
  await impostor.received.waitFor((text) => text.includes('"own"'))
  t.same(impostor.received.items.map((text) => (JSON.parse(text) as { event: string }).event), ['mark'], 'the impostor heard nothing of the owner\'s')

  // Its echo of the owner's mark is its own event, under its own tenant.
  impostor.send(exotelStrings.mark('MZCAvoice', 3, 'said'))
  impostor.send(exotelStrings.stop('CAvoice', 'MZCAvoice', 4))
  await impostor.closed
  owner.send(exotelStrings.mark('MZCAvoice', 2, 'said'))
  owner.send(exotelStrings.stop('CAvoice', 'MZCAvoice', 3))
  await owner.closed
  await subscriber.published.waitFor(({ message }) => message.includes('"call.stop"') && message.includes('"tenant_id":"ACB"'))
  const ownerEvents = subscriber.events('CAvoice').filter((event) => event.tenant_id === 'ACB')
  t.same(ownerEvents.map((event) => event.type), ['call.start', 'call.mark', 'call.stop'], 'the owner\'s events are its own only')
  t.match(ownerEvents[2], { reason: 'callended' })
  t.match(subscriber.events('CAvoice').filter((event) => event.tenant_id === 'ACX').map((event) => event.type), ['call.start', 'call.mark', 'call.stop'])
})

t.test('one stream per call across replicas: a second stream is refused; another tenant\'s call with the id goes through', async (t) => {
  const prefix = 'claim:'
  const env = { REDIS_URL: redis.url, REDIS_PREFIX: prefix, EXOTEL_ACCOUNT_SIDS: 'ACX,ACY' }
  const [replicaA, replicaB] = await Promise.all([startReplica(t, env), startReplica(t, env)])
  const subscriber = await Subscriber.start(t, redis.url, prefix)
  const claims = new Redis(redis.url)
  t.teardown(() => claims.disconnect())
  const released = await keyEvent(t, 'del', `${prefix}call:{ACX:CAblock}`)

  const first = await ProviderClient.connect(`${replicaA.wsUrl}/v1/ingest?sample-rate=8000`)
  first.send(exotelStart('CAblock', 'ACX'))
  await subscriber.waitForEvent('call.start', 'CAblock')
  t.ok(await claims.get(`${prefix}call:{ACX:CAblock}`), 'replica A holds the call\'s claim')
  t.ok((await claims.pttl(`${prefix}call:{ACX:CAblock}`)) > 0, 'with a TTL')

  const otherTenant = await ProviderClient.connect(`${replicaB.wsUrl}/v1/ingest?sample-rate=8000`)
  otherTenant.send(exotelStart('CAblock', 'ACY'))
  otherTenant.send(exotelStrings.stop('CAblock', 'MZCAblock', 2))
  t.same(await otherTenant.closed, { code: 1000, reason: 'stream stopped' }, 'the id taken first blocks no other tenant')

  const second = await ProviderClient.connect(`${replicaB.wsUrl}/v1/ingest?sample-rate=8000`)
  second.send(exotelStart('CAblock', 'ACX'))
  t.same(await second.closed, { code: 1008, reason: 'call CAblock is already streaming' }, 'a second stream of the call, on the other replica')

  first.send(exotelStrings.media('MZCAblock', 2, 1, 0, pcmFrame(1600, 1)))
  first.send(exotelStrings.stop('CAblock', 'MZCAblock', 3))
  t.equal((await first.closed).code, 1000)
  await subscriber.published.waitFor(({ message }) => message.includes('"call.stop"') && message.includes('"tenant_id":"ACX"'))
  const events = subscriber.events('CAblock')
  t.same(events.map((event) => `${event.type} ${String(event.tenant_id)}`).filter((line) => line.endsWith('ACX')), ['call.start ACX', 'call.stop ACX'], 'the refused stream published nothing')
  t.match(events.find((event) => event.type === 'call.stop' && event.tenant_id === 'ACX'), { reason: 'callended', frames: 1 })
  await released.happened
  t.equal(await claims.exists(`${prefix}call:{ACX:CAblock}`), 0, 'the claim is released at the end')

  const later = await ProviderClient.connect(`${replicaB.wsUrl}/v1/ingest?sample-rate=8000`)
  later.send(exotelStart('CAblock', 'ACX'))
  later.send(exotelStrings.stop('CAblock', 'MZCAblock', 2))
  t.same(await later.closed, { code: 1000, reason: 'stream stopped' }, 'a later stream of the call, after the first stopped, goes through')
})

t.test('a replica killed while it owns a call: the call can stream again once the claim has expired', async (t) => {
  const prefix = 'killed:'
  const env = { REDIS_URL: redis.url, REDIS_PREFIX: prefix, CALL_CLAIM_TTL_MS: '1500' }
  const [replicaA, replicaB] = await Promise.all([startReplica(t, env), startReplica(t, env)])
  const subscriber = await Subscriber.start(t, redis.url, prefix)
  const expired = await keyEvent(t, 'expired', `${prefix}call:{~ACxxxxxxxxxxxxxxxxxxxxxxxx:CAkill}`)

  const doomed = await ProviderClient.connect(`${replicaA.wsUrl}/v1/ingest?sample-rate=8000`)
  doomed.send(exotelStrings.start('CAkill'))
  await subscriber.waitForEvent('call.start', 'CAkill')
  replicaA.child.kill('SIGKILL')
  await replicaA.exited

  const tooSoon = await ProviderClient.connect(`${replicaB.wsUrl}/v1/ingest?sample-rate=8000`)
  tooSoon.send(exotelStrings.start('CAkill'))
  t.same(await tooSoon.closed, { code: 1008, reason: 'call CAkill is already streaming' }, 'while the dead replica\'s claim lasts')

  await expired.happened
  const again = await ProviderClient.connect(`${replicaB.wsUrl}/v1/ingest?sample-rate=8000`)
  again.send(exotelStrings.start('CAkill'))
  again.send(exotelStrings.stop('CAkill', 'MZCAkill', 2))
  t.same(await again.closed, { code: 1000, reason: 'stream stopped' }, 'once it expired, the call streams again')
  // The socket closes before Redis delivers the second stream's events: wait for its call.stop.
  await subscriber.published.waitFor(() => subscriber.events('CAkill').some((event) => event.type === 'call.stop'), 'the second stream\'s call.stop')
  t.equal(subscriber.events('CAkill').filter((event) => event.type === 'call.start').length, 2)
})

t.test('the credential decides the tenant, and a start naming another account is refused with 1008', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { ...BASIC, TWILIO_AUTH_TOKEN: 'tenancy-twilio-token', TWILIO_ACCOUNT_SID: 'ACtw' })
  const url = `${gateway.wsUrl}/v1/ingest?sample-rate=8000`
  const outcome = async (key: string, start: Record<string, unknown>): Promise<{ code: number, reason: string }> => {
    const client = await ProviderClient.connect(url, as(key))
    client.send(start)
    client.send(exotelStrings.stop(String((start.start as { call_sid: string }).call_sid), 'MZ', 2))
    return await client.closed
  }

  t.same(await outcome('keyB', exotelStart('CAmismatch', 'AC_OTHER')), { code: 1008, reason: 'account AC_OTHER is not one this credential may stream for' })
  const refused = await gateway.logs.waitFor((line) => line.msg === 'closing connection: bad input' && String(line.reason).startsWith('account AC_OTHER'))
  t.match(refused, { level: 40, close_code: 1008, auth_method: 'basic', auth_key: 'keyB' }, 'the log line names the key and the reason')
  t.notOk(gateway.logs.items.some((line) => JSON.stringify(line).includes('tokenB-secret')), 'and never the token')
  t.equal(subscriber.events('CAmismatch').length, 0, 'nothing is published for it')

  t.same(await outcome('keyB', exotelStart('CAnoaccount', null)), { code: 1000, reason: 'stream stopped' })
  t.match(await subscriber.waitForEvent('call.start', 'CAnoaccount'), { tenant_id: 'ACB' }, 'no account named: the key\'s one account')
  t.same(await outcome('keyBC', exotelStart('CAseveral', null)), { code: 1008, reason: 'the start names no account, and this credential may stream for several' })
  t.same(await outcome('keyBC', exotelStart('CAnamedC', 'ACC')), { code: 1000, reason: 'stream stopped' })
  t.match(await subscriber.waitForEvent('call.start', 'CAnamedC'), { tenant_id: 'ACC' })
  t.same(await outcome('keyAny', exotelStart('CAany', 'ACanything')), { code: 1000, reason: 'stream stopped' })
  t.match(await subscriber.waitForEvent('call.start', 'CAany'), { tenant_id: 'ACanything' }, 'a key bound to * takes the account named')

  // Twilio's signature vouches for TWILIO_ACCOUNT_SID only.
  const twilio = async (accountSid: string): Promise<{ code: number, reason: string }> => {
    const path = '/v1/ingest/twilio'
    const client = await ProviderClient.connect(`${gateway.wsUrl}${path}`, { headers: { 'x-twilio-signature': twilioSignature('tenancy-twilio-token', `wss://127.0.0.1${gateway.wsUrl.slice(gateway.wsUrl.lastIndexOf(':'))}${path}`) } })
    client.send({ event: 'start', start: { accountSid, streamSid: 'MZtw', callSid: `CAtw${accountSid}` }, streamSid: 'MZtw' })
    client.send({ event: 'stop', streamSid: 'MZtw' })
    return await client.closed
  }
  t.same(await twilio('ACelse'), { code: 1008, reason: 'account ACelse is not one this credential may stream for' })
  t.same(await twilio('ACtw'), { code: 1000, reason: 'stream stopped' })
})

t.test('the IP allowlist: a vendor\'s account list decides, and without one the gateway warns at start', async (t) => {
  const { gateway } = await startListenedGateway(t, redis.url, { EXOTEL_ACCOUNT_SIDS: 'ACB' })
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  client.send(exotelStart('CAiplist', 'ACX'))
  t.same(await client.closed, { code: 1008, reason: 'account ACX is not one this credential may stream for' })
  // The vendor's addresses serve all its customers: a start naming no account is nobody's.
  const unnamed = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  unnamed.send(exotelStart('CAunnamed', null))
  t.same(await unnamed.closed, { code: 1008, reason: 'the start names no account' })

  const open = await startGateway(t, redis.url, { AUTH_IP_ALLOWLIST: '127.0.0.0/8,203.0.113.0/24', SUPPORT_TWILIO: 'false' })
  t.match(open.logs.items.find((line) => String(line.msg).startsWith('AUTH_IP_ALLOWLIST admits addresses beyond loopback')),
    { level: 40, ranges: ['203.0.113.0/24'], vendors: ['exotel', 'plivo', 'telnyx', 'vonage'], variables: ['EXOTEL_ACCOUNT_SIDS', 'PLIVO_ACCOUNT_SIDS', 'TELNYX_ACCOUNT_SIDS', 'VONAGE_ACCOUNT_SIDS'] })
  const listed = await startGateway(t, redis.url, { AUTH_IP_ALLOWLIST: '127.0.0.0/8,203.0.113.0/24', SUPPORT_TWILIO: 'false', EXOTEL_ACCOUNT_SIDS: 'ACB', PLIVO_ACCOUNT_SIDS: 'MAXXXXXXXXXXXXXXXXXX', TELNYX_ACCOUNT_SIDS: '3E6F995F-85F7-4705-9741-53B116D28237', VONAGE_ACCOUNT_SIDS: 'a1b2c3d4' })
  await waitReady(listed)
  t.notOk(listed.logs.items.some((line) => String(line.msg).startsWith('AUTH_IP_ALLOWLIST admits')), 'no warning once the vendor has a list')
  const loopback = await startGateway(t, redis.url)
  await waitReady(loopback)
  t.notOk(loopback.logs.items.some((line) => String(line.msg).startsWith('AUTH_IP_ALLOWLIST admits')), 'nor for the loopback default')

  const unbound = await startGateway(t, redis.url, { ...BASIC, TWILIO_AUTH_TOKEN: 'tenancy-twilio-token' })
  t.match(unbound.logs.items.find((line) => String(line.msg).startsWith('BASIC_AUTH_ACCOUNTS binds these keys to *')), { level: 40, keys: ['keyAny'] })
  t.match(unbound.logs.items.find((line) => String(line.msg).startsWith('these auth methods vouch for no account')), { level: 40, methods: ['twilio-signature'] })
})

t.test('METRICS_TENANT_LABEL stays bounded whatever accounts clients name', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { METRICS_TENANT_LABEL: 'true' })
  const calls = 300
  for (let i = 0; i < calls; i++) {
    const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
    client.send(exotelStart(`CAlabel${i}`, `ACrandom${i}x${Math.random().toString(36).slice(2, 8)}`))
    client.send(exotelStrings.stop(`CAlabel${i}`, 'MZ', 2))
    await client.closed
  }
  await subscriber.waitForEvent('call.stop', `CAlabel${calls - 1}`)
  const started = (await scrape(gateway.url)).filter((sample) => sample.name === 'rtaa_calls_started_total')
  t.same(started.map((sample) => sample.labels), [{ vendor: 'exotel', tenant: 'other' }], `${calls} named accounts, one series`)
  t.equal(started[0].value, calls)
})

t.test('Redis away: live calls go on; a call started meanwhile is claimed once Redis answers; of two streams of a call, the older keeps it', async (t) => {
  const env = { CALL_CLAIM_TTL_MS: '1000', REDIS_PREFIX: 'away:' }
  const proxy = await TcpProxy.start(redis.port)
  t.teardown(() => proxy.close())
  const cutOff = await startGateway(t, proxy.url, env)
  await waitReady(cutOff)
  const { gateway: other, subscriber } = await startListenedGateway(t, redis.url, env)
  const keys = new Redis(redis.url)
  t.teardown(() => keys.disconnect())
  const expired = await keyEvent(t, 'expired', 'away:call:{~ACxxxxxxxxxxxxxxxxxxxxxxxx:CAkept}')

  const kept = await ProviderClient.connect(`${cutOff.wsUrl}/v1/ingest?sample-rate=8000`)
  kept.send(exotelStrings.start('CAkept'))
  await subscriber.waitForEvent('call.start', 'CAkept')
  proxy.cut()
  await cutOff.logs.waitFor((line) => line.msg === 'redis connection lost, reconnecting')
  const meanwhile = await ProviderClient.connect(`${cutOff.wsUrl}/v1/ingest?sample-rate=8000`)
  meanwhile.send(exotelStrings.start('CAmeanwhile'))
  await cutOff.logs.waitFor((line) => line.msg === 'call started' && line.interaction_id === 'CAmeanwhile', 'accepted while Redis is away')

  // The outage outlasts the claim's TTL, and another stream of CAkept takes it on the other replica.
  await expired.happened
  const taker = await ProviderClient.connect(`${other.wsUrl}/v1/ingest?sample-rate=8000`)
  taker.send(exotelStrings.start('CAkept'))
  await other.logs.waitFor((line) => line.msg === 'call started' && line.interaction_id === 'CAkept')
  kept.send(exotelStrings.media('MZCAkept', 2, 1, 0, pcmFrame(1600, 1)))

  proxy.restore()
  // The cut-off replica claims at once when Redis is back: its stream of CAkept is the older, so it takes the claim
  // back, and the younger stream finds so at its next renewal.
  t.same(await taker.closed, { code: 1008, reason: 'call CAkept is streaming elsewhere' }, 'the younger stream of the call ends')
  await subscriber.published.waitFor(({ message }) => message.includes('"call.stop"') && message.includes('"reason":"duplicate"'))
  t.equal(await keys.exists('away:call:{~ACxxxxxxxxxxxxxxxxxxxxxxxx:CAmeanwhile}'), 1, 'the call started meanwhile is claimed once Redis answers')
  meanwhile.send(exotelStrings.stop('CAmeanwhile', 'MZCAmeanwhile', 2))
  t.equal((await meanwhile.closed).code, 1000, 'and goes on')
  kept.send(exotelStrings.stop('CAkept', 'MZCAkept', 3))
  t.equal((await kept.closed).code, 1000, 'the older stream went on through the outage and after it')
  const keptStop = await subscriber.published.waitFor(({ message }) => message.includes('"call.stop"') && message.includes('CAkept') && message.includes('"reason":"callended"'))
  t.match(JSON.parse(keptStop.message.toString()), { frames: 1, frames_lost: 0 }, 'with its frame from the outage')
})

t.test('an account a client merely names never takes a verified tenant\'s names, nor learns which of its calls are live', async (t) => {
  const secret = 'tenancy-test-secret-of-32-bytes-at-least'
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { SUPPORT_NATIVE: 'true', JWT_SECRET: secret })
  const verified = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/native`, { headers: { authorization: `Bearer ${signJwt({ tenant_id: 'ACA', exp: inSeconds(60) }, secret)}` } })
  verified.send({ event: 'start', interaction_id: 'CAsame', sample_rate: 8000 })
  await verified.received.waitFor(() => true)

  // The IP allowlist with no account list: whatever the start names, unverified.
  const named = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/exotel?sample-rate=8000`)
  named.send(exotelStart('CAsame', 'ACA'))
  named.send(exotelStrings.stop('CAsame', 'MZCAsame', 2))
  t.same(await named.closed, { code: 1000, reason: 'stream stopped' }, 'not refused: nothing is said about the verified call')
  verified.send({ event: 'stop' })
  await verified.closed
  await subscriber.published.waitFor(({ message }) => message.includes('"call.stop"') && message.includes('"tenant_verified":true'))
  const starts = subscriber.events('CAsame').filter((event) => event.type === 'call.start') as CallStartEvent[]
  t.same(starts.map(({ tenant_id: tenant, tenant_verified: isVerified, audio_channel: channel }) => ({ tenant, isVerified, channel })).sort((a, b) => Number(b.isVerified) - Number(a.isVerified)), [
    { tenant: 'ACA', isVerified: true, channel: `${gateway.prefix}audio:{ACA:CAsame}` },
    { tenant: 'ACA', isVerified: false, channel: `${gateway.prefix}audio:{~ACA:CAsame}` }
  ], 'two calls, the merely named one marked in its events and names')
})

t.test('a stream that sends more than the claim\'s wait allows before its start is accepted is refused, and publishes nothing', async (t) => {
  const own = await TestRedis.start()
  t.teardown(() => own.stop())
  const { gateway } = await startListenedGateway(t, own.url)
  const subscriber = await Subscriber.start(t, own.url, gateway.prefix)
  own.pause() // connected, answering nothing: the claim waits
  t.teardown(() => own.resume())
  const flood = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  flood.send(exotelStrings.start('CAflood'))
  for (let i = 0; i < 250; i++) flood.send(exotelStrings.media('MZCAflood', i + 2, i + 1, i * 100, pcmFrame(16, i)))
  t.same(await flood.closed, { code: 1008, reason: 'too many messages before the call was accepted' })
  t.match(await gateway.logs.waitFor((line) => line.msg === 'closing connection: bad input' && line.interaction_id === 'CAflood'), { close_code: 1008 })
  own.resume()
  const after = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  after.send(exotelStrings.start('CAafterflood'))
  after.send(exotelStrings.stop('CAafterflood', 'MZCAafterflood', 2))
  t.equal((await after.closed).code, 1000)
  await subscriber.waitForEvent('call.stop', 'CAafterflood')
  t.same(subscriber.events('CAflood'), [], 'the refused stream published nothing')
  t.same(subscriber.published.items.filter(({ channel }) => channel.includes('CAflood')), [])
})
