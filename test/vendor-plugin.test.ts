import t from 'tap'
import { loadConfig } from '../src/config.js'
import { builtInVendors } from '../src/vendors/built-in-vendors.js'
import { TestRedis } from './helpers/redis-server.js'
import { startListenedGateway } from './helpers/gateway.js'
import { ProviderClient, exotelStrings, pcmFrame } from './helpers/exotel.js'
import { toy } from './fixtures/toy/toy.js'

/*
 * A vendor defined outside src/, in test/fixtures/toy/, shaped like a folder under src/vendors/, and added to the
 * list of vendors: if a call goes through it on its own route and by detection on /v1/ingest, and its settings
 * reach it, a new vendor needs no edit to the core.
 */
const vendors = [...builtInVendors, toy]

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

for (const path of ['/v1/ingest/toy', '/v1/ingest']) {
  t.test(`a vendor from outside the core serves a call through ${path}`, async (t) => {
    const { gateway, subscriber } = await startListenedGateway(t, redis.url, {}, vendors)
    const call = `toy${path.length}`
    const client = await ProviderClient.connect(`${gateway.wsUrl}${path}`)
    client.send({ type: 'hello', call, khz: 16 })
    t.equal(await client.received.waitFor(() => true), `hi ${call}`)
    client.ws.send(pcmFrame(640, 1), { binary: true })
    client.send({ type: 'bye' })
    t.equal((await client.closed).code, 1000)
    t.match(await subscriber.waitForEvent('call.stop', call), { vendor: 'toy', tenant_id: 'toybox', reason: 'bye', frames: 1, bytes: 640 })
    t.match(subscriber.events(call)[0], { vendor: 'toy', sample_rate: 16000 })
    t.ok(subscriber.frames(call)[0].pcm.equals(pcmFrame(640, 1)))
  })
}

t.test('with the toy plugged in, Exotel is still told apart on /v1/ingest', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, {}, vendors)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  client.send(exotelStrings.connected())
  client.send(exotelStrings.start('CAnottoy'))
  client.send(exotelStrings.stop('CAnottoy', 'MZCAnottoy', 2))
  t.equal((await client.closed).code, 1000)
  t.match(await subscriber.waitForEvent('call.stop', 'CAnottoy'), { vendor: 'exotel' })
})

t.test('the toy brings its part of the configuration: its settings reach it, SUPPORT_TOY=false turns it off', async (t) => {
  t.throws(() => loadConfig({ env: { TOY_TENANT: '' }, dotenvFiles: [], vendors }), { name: 'ConfigError', message: /env\/TOY_TENANT/ })

  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { TOY_TENANT: 'playroom' }, vendors)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/toy`)
  client.send({ type: 'hello', call: 'toyroom', khz: 8 })
  client.send({ type: 'bye' })
  t.equal((await client.closed).code, 1000)
  t.match(await subscriber.waitForEvent('call.stop', 'toyroom'), { vendor: 'toy', tenant_id: 'playroom' })

  const { gateway: without } = await startListenedGateway(t, redis.url, { SUPPORT_TOY: 'false' }, vendors)
  t.equal((await fetch(`${without.url}/v1/ingest/toy`)).status, 404)
})
