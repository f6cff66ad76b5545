import { Redis } from 'ioredis'
import t from 'tap'
import type { CallEvent, CallStartEvent } from '../src/bus/call-events.js'
import { ProviderClient, exotelStrings, pcmFrame } from './helpers/exotel.js'
import { startGateway, startListenedGateway, waitReady } from './helpers/gateway.js'
import { inSeconds, signJwt } from './helpers/jwt.js'
import { scrape, total } from './helpers/metrics.js'
import { playbackWorker } from './helpers/playback-worker.js'
import { TestRedis } from './helpers/redis-server.js'
import { Subscriber } from './helpers/subscriber.js'
import { TcpProxy } from './helpers/tcp-proxy.js'

/*
 * Pause and resume (docs/redis-contract.md, "Pause and resume"): a worker, or an agent desktop, sends `pause` on a
 * call's control channel while a customer reads out card details; until `resume`, the call's audio never reaches
 * Redis. Checked by a subscriber to everything the gateway publishes.
 */

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

/** Exotel's media numbered from 1, 100 ms each at 8 kHz, so a frame's chunk and timestamp say which it is. */
const media = (callSid: string, i: number): Record<string, unknown> => exotelStrings.media(`MZ${callSid}`, i + 2, i, (i - 1) * 100, pcmFrame(1600, i))

/** The call's events of one type, as a worker sees them. */
const ofType = (subscriber: Subscriber, callSid: string, type: CallEvent['type']): CallEvent[] => subscriber.events(callSid).filter((event) => event.type === type)

async function startedExotelCall (gateway: { wsUrl: string }, subscriber: Subscriber, callSid: string): Promise<{ client: ProviderClient, control: string }> {
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  client.send(exotelStrings.start(callSid))
  const start = await subscriber.waitForEvent('call.start', callSid) as CallStartEvent
  return { client, control: start.playback_channel }
}

t.test('an Exotel call paused by a worker: nothing between pause and resume reaches Redis, the counts say what was withheld, and audio resumes byte-exact', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const worker = playbackWorker(t, redis.url)
  const { client, control } = await startedExotelCall(gateway, subscriber, 'CApause')
  for (let i = 1; i <= 5; i++) client.send(media('CApause', i))

  await worker.command(control, { type: 'pause' })
  const paused = await subscriber.waitForEvent('call.paused', 'CApause')
  t.match(paused, { source: 'worker', vendor: 'exotel', tenant_id: 'ACxxxxxxxxxxxxxxxxxxxxxxxx' })
  for (let i = 6; i <= 10; i++) client.send(media('CApause', i))
  await worker.command(control, { type: 'pause' }) // a second pause changes nothing
  await worker.command(control, { type: 'resume' })
  const resumed = await subscriber.waitForEvent('call.resumed', 'CApause')
  t.match(resumed, { source: 'worker', frames_withheld: 5, bytes_withheld: 5 * 1600 })
  t.ok((resumed as { paused_ms: number }).paused_ms >= 0 && resumed.ts >= paused.ts, 'the pause\'s length, and both moments')
  for (let i = 11; i <= 15; i++) client.send(media('CApause', i))
  client.send(exotelStrings.stop('CApause', 'MZCApause', 17))
  t.equal((await client.closed).code, 1000)

  const stop = await subscriber.waitForEvent('call.stop', 'CApause')
  t.match(stop, { frames: 10, bytes: 10 * 1600, frames_lost: 0, gaps: 0, frames_withheld: 5, bytes_withheld: 5 * 1600, tracks: { inbound: { frames: 10, frames_withheld: 5 } } },
    'withheld, not lost, and no gap for the withheld chunks')
  const frames = subscriber.frames('CApause')
  t.same(frames.map(({ header }) => header.vendor_seq), [3, 4, 5, 6, 7, 13, 14, 15, 16, 17], 'the frames before the pause and after the resume, none between')
  t.ok(frames.every(({ pcm }, i) => pcm.equals(pcmFrame(1600, i < 5 ? i + 1 : i + 6))), 'byte for byte')
  t.same(frames.map(({ header }) => header.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'seq numbers what was published')
  t.same(subscriber.sequence('CApause'), ['start', 'audio', 'audio', 'audio', 'audio', 'audio', 'paused', 'resumed', 'audio', 'audio', 'audio', 'audio', 'audio', 'stop'])
  t.equal(ofType(subscriber, 'CApause', 'call.paused').length, 1, 'one call.paused for two pauses')
  t.match(gateway.logs.items.find((line) => line.msg === 'call paused: audio withheld from redis'), { interaction_id: 'CApause', source: 'worker' })
})

t.test('a one-way call (native) pauses too, and its derived timestamps keep the withheld audio\'s place', async (t) => {
  const secret = 'a-test-secret-that-is-at-least-32-bytes'
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { SUPPORT_NATIVE: 'true', JWT_SECRET: secret })
  const worker = playbackWorker(t, redis.url)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/native`, { headers: { authorization: `Bearer ${signJwt({ tenant_id: 'tenant-a', exp: inSeconds(60) }, secret)}` } })
  client.send({ event: 'start', interaction_id: 'native-pause', sample_rate: 16000 })
  const start = await subscriber.waitForEvent('call.start', 'native-pause') as CallStartEvent
  const frame = (i: number): Buffer => pcmFrame(640, i) // 20 ms at 16 kHz
  client.ws.send(frame(1), { binary: true })
  await worker.command(start.playback_channel, { type: 'pause' })
  await subscriber.waitForEvent('call.paused', 'native-pause')
  client.ws.send(frame(2), { binary: true })
  client.ws.send(frame(3), { binary: true })
  await worker.command(start.playback_channel, { type: 'resume' })
  await subscriber.waitForEvent('call.resumed', 'native-pause')
  client.ws.send(frame(4), { binary: true })
  client.send({ event: 'stop' })
  await client.closed
  t.match(await subscriber.waitForEvent('call.stop', 'native-pause'), { frames: 2, frames_withheld: 2, bytes_withheld: 1280 })
  const frames = subscriber.frames('native-pause')
  t.ok(frames[1].pcm.equals(frame(4)))
  t.same(frames.map(({ header }) => header.timestamp_ms), [0, 60], 'the resumed frame starts 60 ms in, after the 40 ms withheld')
})

t.test('a pause holds through a Redis outage: what the paused call receives is never buffered, and never published', async (t) => {
  const proxy = await TcpProxy.start(redis.port)
  t.teardown(() => proxy.close())
  const gateway = await startGateway(t, proxy.url)
  await waitReady(gateway)
  const subscriber = await Subscriber.start(t, redis.url, gateway.prefix)
  const worker = playbackWorker(t, redis.url)
  const { client, control } = await startedExotelCall(gateway, subscriber, 'CAblip')
  client.send(media('CAblip', 1))
  await worker.command(control, { type: 'pause' })
  await subscriber.waitForEvent('call.paused', 'CAblip')

  proxy.cut()
  await gateway.logs.waitFor((line) => line.msg === 'redis connection lost, reconnecting')
  for (let i = 2; i <= 11; i++) client.send(media('CAblip', i))
  // A message the call logs, after the frames: once it is logged, the frames before it have been handled.
  client.send({ event: 'after-the-frames' })
  await gateway.logs.waitFor((line) => line.msg === 'unknown event, ignored' && line.event === 'after-the-frames')
  const samples = await scrape(gateway.url)
  t.equal(total(samples, 'rtaa_frames_withheld_total'), 10, 'the frames were taken, and withheld')
  t.equal(total(samples, 'rtaa_redis_buffer_bytes'), 0, 'nothing of the paused call waits in the outage buffer')

  proxy.restore()
  // The control channel's subscriber comes back too: a resume sent before it would be heard by no one.
  await gateway.logs.waitFor((line) => String(line.msg).startsWith('playback subscriber reconnected'), 'the control channel\'s subscriber back')
  await subscribedAgain(control)
  await worker.command(control, { type: 'resume' })
  const resumed = await subscriber.waitForEvent('call.resumed', 'CAblip')
  t.match(resumed, { frames_withheld: 10 }, 'still paused after the outage: every frame of it withheld')
  client.send(media('CAblip', 12))
  client.send(exotelStrings.stop('CAblip', 'MZCAblip', 14))
  t.match(await subscriber.waitForEvent('call.stop', 'CAblip'), { frames: 2, frames_lost: 0, frames_withheld: 10 })
  t.same(subscriber.frames('CAblip').map(({ header }) => header.vendor_seq), [3, 14], 'the frame before the pause and the one after the resume')
})

/** Waits, a round trip to Redis at a time, until the gateway has subscribed `channel` again. */
async function subscribedAgain (channel: string): Promise<void> {
  const admin = new Redis(redis.url)
  try {
    for (let tries = 0; tries < 10_000; tries++) {
      const [, count] = await admin.pubsub('NUMSUB', channel) as [string, number]
      if (count > 0) return
    }
    throw new Error(`${channel} was not subscribed again`)
  } finally {
    admin.disconnect()
  }
}

t.test('bad control commands are dropped and counted, and never end the call', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const worker = playbackWorker(t, redis.url)
  const { client, control } = await startedExotelCall(gateway, subscriber, 'CAbadcontrol')
  await worker.command(control, { type: 'resume' }) // not paused: nothing to do
  await worker.command(control, { type: 'event', event: { entities: [] } }) // Exotel takes no event
  await gateway.logs.waitFor((line) => line.msg === 'playback message dropped: this vendor takes no event')
  t.ok(total(await scrape(gateway.url), 'rtaa_playback_dropped_total', { reason: 'unsupported_command' }) >= 1, 'counted')
  client.send(media('CAbadcontrol', 1))
  client.send(exotelStrings.stop('CAbadcontrol', 'MZCAbadcontrol', 3))
  t.equal((await client.closed).code, 1000)
  t.match(await subscriber.waitForEvent('call.stop', 'CAbadcontrol'), { frames: 1, frames_withheld: 0 })
  t.same(ofType(subscriber, 'CAbadcontrol', 'call.resumed'), [], 'a resume while not paused publishes nothing')
})
