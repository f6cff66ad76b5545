import t from 'tap'
import { TestRedis, freePort } from './helpers/redis-server.js'
import { startGateway, startListenedGateway, waitReady } from './helpers/gateway.js'
import { Subscriber } from './helpers/subscriber.js'
import { ProviderClient, exotelStrings } from './helpers/exotel.js'

async function get (url: string): Promise<{ status: number, body: unknown }> {
  const response = await fetch(url)
  return { status: response.status, body: await response.json() }
}

t.test('/health and /ready follow Redis down and back up', async (t) => {
  const redis = await TestRedis.start()
  t.teardown(() => redis.stop())
  const gateway = await startGateway(t, redis.url)
  await waitReady(gateway)

  t.same(await get(`${gateway.url}/health`), { status: 200, body: { status: 'ok' } })
  t.same(await get(`${gateway.url}/ready`), { status: 200, body: { status: 'ready' } })

  await redis.stop()
  await gateway.logs.waitFor((line) => line.msg === 'redis connection lost, reconnecting')
  t.same(await get(`${gateway.url}/ready`), { status: 503, body: { status: 'not_ready', reasons: ['redis_disconnected', 'playback_disconnected'] } })
  t.same(await get(`${gateway.url}/health`), { status: 200, body: { status: 'ok' } }, 'liveness does not depend on Redis')

  const connects = gateway.logs.items.filter((line) => line.msg === 'redis connected').length
  await redis.start()
  await gateway.logs.waitFor((line) => line.msg === 'redis connected' && gateway.logs.items.filter((l) => l.msg === 'redis connected').length > connects)
  await gateway.logs.waitFor((line) => line.msg === 'playback subscriber reconnected')
  t.same(await get(`${gateway.url}/ready`), { status: 200, body: { status: 'ready' } }, 'ready again after Redis returns')
})

t.test('the gateway starts without Redis and reports not ready', async (t) => {
  const gateway = await startGateway(t, `redis://127.0.0.1:${await freePort()}`)
  t.same(await get(`${gateway.url}/health`), { status: 200, body: { status: 'ok' } })
  t.same(await get(`${gateway.url}/ready`), { status: 503, body: { status: 'not_ready', reasons: ['redis_disconnected', 'playback_disconnected'] } })
})

t.test('a Redis outage mid-call neither crashes the process nor disturbs the call', async (t) => {
  const redis = await TestRedis.start()
  t.teardown(() => redis.stop())
  const gateway = await startGateway(t, redis.url)
  await waitReady(gateway)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  client.send(exotelStrings.start('CAoutage'))
  await redis.stop()
  await gateway.logs.waitFor((line) => line.msg === 'redis connection lost, reconnecting')
  client.send(exotelStrings.media('MZCAoutage', 2, 1, 0, Buffer.alloc(320)))
  await redis.start()
  const subscriber = await Subscriber.start(t, redis.url, gateway.prefix)
  await waitReady(gateway)
  client.send(exotelStrings.stop('CAoutage', 'MZCAoutage', 3))
  t.equal((await client.closed).code, 1000, 'the call ended normally')
  t.match(await subscriber.waitForEvent('call.stop', 'CAoutage'), { frames: 1, frames_lost: 0, reason: 'callended' })
  t.same(await get(`${gateway.url}/health`), { status: 200, body: { status: 'ok' } })
})

t.test('during shutdown /ready fails while /health holds, and live calls end with 1001 and reason shutdown', async (t) => {
  const redis = await TestRedis.start()
  t.teardown(() => redis.stop())
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  client.send(exotelStrings.start('CAshutdown'))
  await subscriber.waitForEvent('call.start', 'CAshutdown')

  const draining = gateway.app.liveCalls.drain(60_000) // what server.ts does first on SIGTERM
  t.same(await get(`${gateway.url}/ready`), { status: 503, body: { status: 'not_ready', reasons: ['shutting_down'] } })
  t.same(await get(`${gateway.url}/health`), { status: 200, body: { status: 'ok' } })

  await gateway.app.close()
  await draining
  t.equal(gateway.app.server.listenerCount('upgrade'), 0, 'no upgrade reaches the closed app')
  t.same(await client.closed, { code: 1001, reason: 'server shutting down' })
  t.match(await subscriber.waitForEvent('call.stop', 'CAshutdown'), { reason: 'shutdown' })
})
