import t from 'tap'
import { TestRedis } from './helpers/redis-server.js'
import { startListenedGateway } from './helpers/gateway.js'
import { ProviderClient, exotelStrings, pcmFrame, refusedUpgrade } from './helpers/exotel.js'
import { scrape, total } from './helpers/metrics.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

t.test('a client that stops answering pings is terminated, and its call ends with keepalive_timeout', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { WS_PING_INTERVAL_MS: '100', WS_PONG_TIMEOUT_MS: '150' })
  const silent = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`, { autoPong: false })
  silent.send(exotelStrings.start('CAnopong'))
  const answering = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  answering.send(exotelStrings.start('CApong'))
  let pings = 0
  answering.ws.on('ping', () => { pings++ })

  t.equal((await silent.closed).code, 1006, 'terminated, without a close handshake')
  t.match(await subscriber.waitForEvent('call.stop', 'CAnopong'), { reason: 'keepalive_timeout' })
  t.ok(pings > 0, 'the other client was pinged too')
  t.equal(answering.ws.readyState, answering.ws.OPEN, 'and, answering, it is still connected')
  answering.close()
})

t.test('a call that sends nothing for IDLE_TIMEOUT_MS is closed with reason idle', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { IDLE_TIMEOUT_MS: '300' })
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  client.send(exotelStrings.start('CAidle'))
  t.same(await client.closed, { code: 1000, reason: 'idle' })
  t.match(await subscriber.waitForEvent('call.stop', 'CAidle'), { reason: 'idle' })
  t.match(gateway.logs.items.find((line) => line.msg === 'call ended'), { interaction_id: 'CAidle', reason: 'idle' })
})

t.test('a call that keeps sending is not idle, however long it lasts past IDLE_TIMEOUT_MS', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { IDLE_TIMEOUT_MS: '300' })
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  client.send(exotelStrings.start('CAbusy'))
  // 12 frames 100 ms apart: the call lasts four idle timeouts, and is never quiet for one.
  for (let i = 0; i < 12; i++) {
    client.send(exotelStrings.media('MZCAbusy', i + 2, i + 1, i * 100, pcmFrame(1600, i)))
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.same(await client.closed, { code: 1000, reason: 'idle' }, 'once it goes quiet, it is idle')
  t.match(await subscriber.waitForEvent('call.stop', 'CAbusy'), { reason: 'idle', frames: 12 }, 'every frame was taken before')
})

t.test('over MAX_CONCURRENT_CALLS, a new upgrade gets 503 with Retry-After and open calls go on', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { MAX_CONCURRENT_CALLS: '2' })
  const first = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  first.send(exotelStrings.start('CAfirst'))
  const second = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  second.send(exotelStrings.start('CAsecond'))
  await subscriber.waitForEvent('call.start', 'CAsecond')

  const refused = await refusedUpgrade(`${gateway.wsUrl}/v1/ingest`)
  t.equal(refused.status, 503)
  t.equal(refused.headers['retry-after'], '5')
  t.match(JSON.parse(refused.body), { message: 'the gateway is at its call limit' })
  t.equal(total(await scrape(gateway.url), 'rtaa_upgrades_refused_total', { reason: 'max_calls' }), 1)

  first.send(exotelStrings.stop('CAfirst', 'MZCAfirst', 2))
  t.equal((await first.closed).code, 1000, 'an open call is not touched')
  const third = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  third.send(exotelStrings.start('CAthird'))
  await subscriber.waitForEvent('call.start', 'CAthird')
  t.pass('once a call ends, a new one is admitted')
  second.close()
  third.close()
})

t.test('while the event loop lags past EVENT_LOOP_DELAY_LIMIT_MS, new upgrades get 503', async (t) => {
  const { gateway } = await startListenedGateway(t, redis.url, { EVENT_LOOP_DELAY_LIMIT_MS: '50' })
  // Block this process's loop (the gateway's too) past one of under-pressure's one-second samples. Its sampling timer
  // and the delay histogram's are both overdue after a block, in either order: a sample taken before the histogram
  // saw the block reads no lag, so the block is repeated until a sample has seen one.
  for (let attempt = 0; attempt < 5 && !gateway.app.isUnderPressure(); attempt++) {
    const blockedUntil = Date.now() + 1500
    while (Date.now() < blockedUntil) { /* lag */ }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  t.ok(gateway.app.isUnderPressure(), 'under-pressure saw the lag')
  const refused = await refusedUpgrade(`${gateway.wsUrl}/v1/ingest`)
  t.equal(refused.status, 503)
  t.match(JSON.parse(refused.body), { message: 'the gateway is overloaded' })
  t.equal((await fetch(`${gateway.url}/health`)).status, 200, 'the probes are not refused')
})
