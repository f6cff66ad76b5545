import { once } from 'node:events'
import t from 'tap'
import type { LiveCall } from '../src/calls/live-call.js'
import { TestRedis } from './helpers/redis-server.js'
import { startListenedGateway } from './helpers/gateway.js'
import { ProviderClient, exotelStrings, pcmFrame } from './helpers/exotel.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

t.test('the registry shows every connection in snapshot() and tells of each call\'s start and end', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const { liveCalls } = gateway.app
  const started = once(liveCalls, 'start') as Promise<[LiveCall]>

  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/exotel?sample-rate=16000`)
  // The server takes the socket before the client sees it open.
  t.match(liveCalls.snapshot(), [{ state: 'awaiting-start', vendor: 'exotel', interaction_id: null, frames: 0 }], 'a connection before its start')

  client.send(exotelStrings.start('CAsnapshot'))
  const [call] = await started
  t.equal(call.info?.interactionId, 'CAsnapshot', 'start carries the call')
  client.send(exotelStrings.media('MZCAsnapshot', 2, 1, 0, pcmFrame(640, 1)))
  client.send(exotelStrings.media('MZCAsnapshot', 3, 3, 40, pcmFrame(640, 2)))
  // Published in the order received: once the key press is on Redis, the gateway has taken both frames.
  client.send(exotelStrings.dtmf('MZCAsnapshot', 4, '5'))
  await subscriber.waitForEvent('call.dtmf', 'CAsnapshot')
  const [live] = liveCalls.snapshot()
  t.match(live, {
    state: 'live',
    vendor: 'exotel',
    interaction_id: 'CAsnapshot',
    tenant_id: 'ACxxxxxxxxxxxxxxxxxxxxxxxx',
    stream_id: 'MZCAsnapshot',
    sample_rate: 16000,
    frames: 2,
    bytes: 1280,
    frames_lost: 0,
    gaps: 1
  })
  t.ok(typeof live.started_at === 'number' && live.started_at <= Date.now(), 'with the time it started')

  const ended = once(liveCalls, 'end') as Promise<[LiveCall]>
  client.send(exotelStrings.stop('CAsnapshot', 'MZCAsnapshot', 5))
  t.equal((await ended)[0], call, 'end carries the same call')
  t.equal((await client.closed).code, 1000)
  await subscriber.waitForEvent('call.stop', 'CAsnapshot')
})
