import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import type { CallStartEvent } from '../src/bus/call-events.js'
import { ProviderClient, exotelStrings, pcmFrame } from './helpers/exotel.js'
import { scrape, total } from './helpers/metrics.js'
import { TestRedis } from './helpers/redis-server.js'
import { startReplica, type Replica } from './helpers/server-process.js'
import { Subscriber } from './helpers/subscriber.js'
import { Collected } from './helpers/waiter.js'

let prefixes = 0

/** A gateway process on a Redis of the test's own, a subscriber, and a worker that publishes playback. */
async function setup (t: Test, env: Record<string, string> = {}) {
  const redis = await TestRedis.start()
  t.teardown(() => redis.stop())
  const prefix = `playback${process.pid}-${++prefixes}:`
  const gateway = await startReplica(t, { REDIS_URL: redis.url, REDIS_PREFIX: prefix, LOG_LEVEL: 'info', ...env })
  const subscriber = await Subscriber.start(t, redis.url, prefix)
  const worker = new Redis(redis.url)
  t.teardown(() => worker.disconnect())
  return { redis, gateway, subscriber, worker }
}

/** The playback envelope of docs/redis-contract.md: a 4-byte header length, the JSON header, then PCM. */
function audioMessage (sampleRate: number, pcm: Buffer): Buffer {
  const header = Buffer.from(JSON.stringify({ sample_rate: sampleRate, encoding: 'pcm_s16le', channels: 1 }))
  const length = Buffer.alloc(4)
  length.writeUInt32BE(header.length)
  return Buffer.concat([length, header, pcm])
}

/** An Exotel Voicebot call: what the gateway sends it, parsed, and the playback channel call.start names. */
async function voicebotCall (t: Test, gateway: Replica, subscriber: Subscriber, callSid: string) {
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  t.teardown(() => client.ws.terminate())
  const received = new Collected<Record<string, unknown>>()
  client.ws.on('message', (data) => received.push(JSON.parse(data.toString()) as Record<string, unknown>))
  client.send(exotelStrings.start(callSid))
  const { playback_channel: channel } = await subscriber.waitForEvent('call.start', callSid) as CallStartEvent
  return { client, received, channel }
}

t.test('Redis cutting the playback subscriber off for its output buffer is a warning, a metric, and a resubscription of every call', async (t) => {
  const { gateway, subscriber, worker } = await setup(t)
  const a = await voicebotCall(t, gateway, subscriber, 'CAburstA')
  const b = await voicebotCall(t, gateway, subscriber, 'CAburstB')
  // Redis's own guard: a subscriber whose unread messages pass the hard limit is disconnected at once.
  await worker.config('SET', 'client-output-buffer-limit', 'pubsub 1mb 1mb 0')

  await worker.publish(a.channel, audioMessage(8000, pcmFrame(1536 * 1024, 1)))
  const lost = await gateway.lines.waitFor((line) => String(line.msg).startsWith('playback subscriber lost its redis connection'))
  t.match(lost, { level: 40, calls: 2 })
  const back = await gateway.lines.waitFor((line) => line.msg === 'playback subscriber reconnected; resubscribing every live call')
  t.match(back, { level: 40, calls: 2 })
  t.equal(total(await scrape(gateway.url), 'rtaa_redis_disconnects_total', { connection: 'playback' }), 1, 'counted')

  // Resubscribed: a worker's command reaches the other call again. Subscribing is asynchronous, so the worker
  // repeats its mark until Redis counts a subscriber on the channel, as a worker checking PUBLISH's reply would.
  while (await worker.publish(b.channel, JSON.stringify({ type: 'mark', name: 'after-the-burst' })) === 0) await worker.ping()
  const mark = await b.received.waitFor((message) => message.event === 'mark')
  t.match(mark, { mark: { name: 'after-the-burst' } })
  t.equal((await fetch(`${gateway.url}/ready`)).status, 200, 'ready again')
})

t.test('a playback message above PLAYBACK_MAX_MESSAGE_BYTES is refused unparsed and counted; the call plays on', async (t) => {
  const { gateway, subscriber, worker } = await setup(t, { PLAYBACK_MAX_MESSAGE_BYTES: '4096' })
  const call = await voicebotCall(t, gateway, subscriber, 'CAbig')
  await worker.publish(call.channel, audioMessage(8000, pcmFrame(8000, 1)))
  const refused = await gateway.lines.waitFor((line) => line.msg === 'playback message dropped: larger than PLAYBACK_MAX_MESSAGE_BYTES')
  t.match(refused, { level: 40, interaction_id: 'CAbig', max_bytes: 4096 })
  t.equal(total(await scrape(gateway.url), 'rtaa_playback_dropped_total', { reason: 'too_big' }), 1)
  await worker.publish(call.channel, audioMessage(8000, pcmFrame(3200, 2)))
  const media = await call.received.waitFor((message) => message.event === 'media')
  t.ok(media, 'a message within the bound still plays')
})

t.test('PLAYBACK_MAX_TOTAL_BYTES bounds what all calls queue together', async (t) => {
  const { gateway, subscriber, worker } = await setup(t, { PLAYBACK_MAX_TOTAL_BYTES: String(1024 * 1024), PLAYBACK_MAX_BUFFER_MS: '120000' })
  const first = await voicebotCall(t, gateway, subscriber, 'CAbudget1')
  const second = await voicebotCall(t, gateway, subscriber, 'CAbudget2')
  // 56 s of 8 kHz audio: within the first call's own bound, most of the process's.
  await worker.publish(first.channel, audioMessage(8000, pcmFrame(900_000, 1)))
  await first.received.waitFor((message) => message.event === 'media')
  await worker.publish(second.channel, audioMessage(8000, pcmFrame(200_000, 2)))
  const refused = await gateway.lines.waitFor((line) => line.msg === 'playback audio refused: PLAYBACK_MAX_TOTAL_BYTES reached')
  t.match(refused, { level: 40, interaction_id: 'CAbudget2' })
  const samples = await scrape(gateway.url)
  t.equal(total(samples, 'rtaa_playback_dropped_total', { reason: 'process_budget' }), 1)
  t.ok(total(samples, 'rtaa_playback_bytes') > 800_000, 'the gauge shows what is queued')

  // clear gives the first call's queue back to the budget, and the second call is heard.
  await worker.publish(first.channel, JSON.stringify({ type: 'clear' }))
  await first.received.waitFor((message) => message.event === 'clear')
  await worker.publish(second.channel, audioMessage(8000, pcmFrame(200_000, 3)))
  t.ok(await second.received.waitFor((message) => message.event === 'media'), 'the budget is shared, and given back')
})
