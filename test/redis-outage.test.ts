import t, { type Test } from 'tap'
import { TestRedis } from './helpers/redis-server.js'
import { startGateway, waitReady } from './helpers/gateway.js'
import { Subscriber } from './helpers/subscriber.js'
import { ProviderClient, exotelStrings, pcmFrame } from './helpers/exotel.js'
import { scrape, total } from './helpers/metrics.js'
import { TcpProxy } from './helpers/tcp-proxy.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

async function partitionedGateway (t: Test, env: Record<string, string> = {}) {
  const proxy = await TcpProxy.start(redis.port)
  t.teardown(() => proxy.close())
  const gateway = await startGateway(t, proxy.url, env)
  await waitReady(gateway)
  const subscriber = await Subscriber.start(t, redis.url, gateway.prefix)
  return { proxy, gateway, subscriber }
}

t.test('cut off from Redis mid-call, the gateway holds every frame and publishes them in order on reconnect', async (t) => {
  const { proxy, gateway, subscriber } = await partitionedGateway(t)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  client.send(exotelStrings.start('CAoutage'))
  client.send(exotelStrings.media('MZCAoutage', 2, 1, 0, pcmFrame(1600, 0)))
  await subscriber.published.waitFor(({ channel }) => channel.endsWith(':CAoutage}'))

  proxy.cut()
  await gateway.logs.waitFor((line) => line.msg === 'redis connection lost, reconnecting')
  t.equal((await fetch(`${gateway.url}/ready`)).status, 503, 'not ready while Redis is away')
  for (let i = 1; i < 20; i++) client.send(exotelStrings.media('MZCAoutage', i + 2, i + 1, i * 100, pcmFrame(1600, i)))
  client.send(exotelStrings.stop('CAoutage', 'MZCAoutage', 22))
  t.equal((await client.closed).code, 1000, 'the call itself never noticed')
  t.ok(total(await scrape(gateway.url), 'rtaa_redis_buffer_bytes') > 19 * 1600, 'the frames wait in the buffer')

  proxy.restore()
  const stop = await subscriber.waitForEvent('call.stop', 'CAoutage')
  t.match(stop, { frames: 20, frames_lost: 0 })
  const frames = subscriber.frames('CAoutage')
  t.same(frames.map((f) => f.header.seq), Array.from({ length: 20 }, (_, i) => i + 1), 'every frame, in order')
  t.ok(frames.every((f, i) => f.pcm.equals(pcmFrame(1600, i))), 'each with its own audio')
  t.same(subscriber.sequence('CAoutage').at(-1), 'stop', 'call.stop after the last frame')
  // The playback subscriber went through the cut proxy too; readiness waits for it.
  await gateway.logs.waitFor((line) => line.msg === 'playback subscriber reconnected')
  t.equal((await fetch(`${gateway.url}/ready`)).status, 200)
  // The gauge counts publishes until Redis acknowledges them, which may reach the gateway after the subscriber has
  // the message: each scrape is a round trip, and the loop ends when the last acknowledgement is in.
  while (total(await scrape(gateway.url), 'rtaa_redis_buffer_bytes') !== 0);
  t.pass('nothing waits for Redis any more')
})

t.test('past REDIS_BUFFER_MAX_BYTES the oldest frames are dropped, counted, and reported in call.stop', async (t) => {
  const bound = 20_000
  const { proxy, gateway, subscriber } = await partitionedGateway(t, { REDIS_BUFFER_MAX_BYTES: String(bound) })
  proxy.cut()
  await gateway.logs.waitFor((line) => line.msg === 'redis connection lost, reconnecting')
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  client.send(exotelStrings.start('CAoverflow'))
  for (let i = 0; i < 40; i++) client.send(exotelStrings.media('MZCAoverflow', i + 2, i + 1, i * 100, pcmFrame(1600, i)))
  client.send(exotelStrings.stop('CAoverflow', 'MZCAoverflow', 50))
  await client.closed
  const during = await scrape(gateway.url)
  t.ok(total(during, 'rtaa_redis_buffer_bytes') <= bound, `the buffer stays within its bound: ${total(during, 'rtaa_redis_buffer_bytes')} bytes`)

  proxy.restore()
  const stop = await subscriber.waitForEvent('call.stop', 'CAoverflow')
  const frames = subscriber.frames('CAoverflow')
  t.ok(frames.length > 0 && frames.length < 40, `some frames survive (${frames.length}), not all`)
  t.match(stop, { frames: 40, frames_lost: 40 - frames.length }, 'call.stop counts exactly the frames that never arrived')
  t.same(frames.map((f) => f.header.seq), Array.from({ length: frames.length }, (_, i) => 40 - frames.length + i + 1), 'the newest survive, in order')
  t.equal(total(await scrape(gateway.url), 'rtaa_frames_dropped_total', { reason: 'redis_buffer_full' }), 40 - frames.length)
  t.match(subscriber.events('CAoverflow')[0], { type: 'call.start' }, 'events are never dropped')
})

t.test('the real redis-server stopped and restarted mid-call: no crash, readiness follows, the call goes on', async (t) => {
  const own = await TestRedis.start()
  t.teardown(() => own.stop())
  const gateway = await startGateway(t, own.url)
  await waitReady(gateway)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  client.send(exotelStrings.start('CArestart'))
  await gateway.logs.waitFor((line) => line.msg === 'call started')
  await own.stop()
  await gateway.logs.waitFor((line) => line.msg === 'redis connection lost, reconnecting')
  client.send(exotelStrings.media('MZCArestart', 2, 1, 0, pcmFrame(1600, 1)))
  t.equal((await fetch(`${gateway.url}/ready`)).status, 503)
  await own.start()
  await gateway.logs.waitFor((line) => line.msg === 'redis connected' && line.buffered !== 0, 'reconnected with the frame held')
  const subscriber = await Subscriber.start(t, own.url, gateway.prefix)
  client.send(exotelStrings.media('MZCArestart', 3, 2, 100, pcmFrame(1600, 2)))
  client.send(exotelStrings.stop('CArestart', 'MZCArestart', 4))
  t.equal((await client.closed).code, 1000)
  t.match(await subscriber.waitForEvent('call.stop', 'CArestart'), { frames: 2, frames_lost: 0 })
  await gateway.logs.waitFor((line) => String(line.msg).startsWith('playback subscriber reconnected'))
  t.equal((await fetch(`${gateway.url}/ready`)).status, 200)
})
