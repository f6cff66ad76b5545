import { performance } from 'node:perf_hooks'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import type { CallStartEvent } from '../src/bus/call-events.js'
import { TestRedis } from './helpers/redis-server.js'
import { startListenedGateway, type Gateway } from './helpers/gateway.js'
import { ProviderClient, exotelStrings, pcmFrame } from './helpers/exotel.js'
import type { Subscriber } from './helpers/subscriber.js'
import { scrape, total } from './helpers/metrics.js'
import { Collected } from './helpers/waiter.js'
import { playbackWorker, type PlaybackWorker } from './helpers/playback-worker.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

const LEAD_MS = 400

const worker = (t: Test): PlaybackWorker => playbackWorker(t, redis.url)

interface Received {
  at: number
  message: Record<string, unknown>
}

/** An Exotel Voicebot stand-in: records every server message with its arrival time, and can echo marks. */
async function voicebotCall (t: Test, gateway: Gateway, subscriber: Subscriber, callSid: string, sampleRate: number, echoMarks = false): Promise<{ client: ProviderClient, received: Collected<Received>, channel: string }> {
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=${sampleRate}`)
  t.teardown(() => client.ws.terminate())
  const received = new Collected<Received>()
  client.ws.on('message', (data) => {
    const message = JSON.parse(data.toString()) as Record<string, unknown>
    received.push({ at: performance.now(), message })
    if (echoMarks && message.event === 'mark') client.send({ event: 'mark', sequence_number: '99', stream_sid: `MZ${callSid}`, mark: message.mark })
  })
  client.send(exotelStrings.start(callSid))
  // Workers speak on the channel call.start names.
  const { playback_channel: channel } = await subscriber.waitForEvent('call.start', callSid) as CallStartEvent
  return { client, received, channel }
}

/** Waits for call.mark of a name on the calls channel (the subscriber also sees the playback channel). */
async function callMark (gateway: Gateway, subscriber: Subscriber, name: string): Promise<void> {
  await subscriber.published.waitFor(({ channel, message }) => channel === `${gateway.prefix}calls` && message.includes(`"name":"${name}"`), `call.mark ${name}`)
}

const payloadOf = ({ message }: Received): Buffer => Buffer.from((message.media as { payload: string }).payload, 'base64')

/** Waits until the caller has received `bytes` of audio in all. */
async function heard (received: Collected<Received>, bytes: number): Promise<void> {
  let total = 0
  await received.waitFor((item) => {
    total = received.items.filter(({ message }) => message.event === 'media').reduce((sum, r) => sum + payloadOf(r).length, 0)
    return total >= bytes && item !== undefined
  }, `${bytes} bytes of audio`)
}

t.test('1.5 s of 16 kHz audio reaches the caller in chunks that obey every Exotel rule, paced within the lead', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { PLAYBACK_LEAD_MS: String(LEAD_MS) })
  const { received, channel } = await voicebotCall(t, gateway, subscriber, 'CAplay', 16000)
  const input = Buffer.concat(Array.from({ length: 31 }, (_, i) => pcmFrame(1600, i))) // 1.55 s at 16 kHz
  await (await worker(t)).audio(channel, 16000, input)

  // 15 chunks of 3,200 bytes (100 ms), then the last 1,600 bytes padded up to Exotel's 3,200-byte minimum.
  const expectedBytes = 16 * 3200
  await heard(received, expectedBytes)
  const media = received.items.filter(({ message }) => message.event === 'media')
  t.ok(media.every(({ message }) => message.stream_sid === 'MZCAplay' && Object.keys(message).sort().join() === 'event,media,stream_sid'), 'Exotel media shape')
  for (const chunk of media.map(payloadOf)) {
    t.ok(chunk.length % 320 === 0 && chunk.length >= 3200 && chunk.length <= 100_000, `chunk of ${chunk.length} bytes obeys 320 × n, ≥ 3,200, ≤ 100 KB`)
  }
  const played = Buffer.concat(media.map(payloadOf))
  t.ok(played.subarray(0, input.length).equals(input), 'the audio is the input, unchanged (same rate)')
  t.ok(played.subarray(input.length).equals(Buffer.alloc(played.length - input.length)), 'followed by zero padding only')
  t.equal(played.length, expectedBytes, 'the last chunk is padded to the next 3,200-byte chunk boundary')

  // The caller's side: audio received minus time elapsed since the first chunk is what sits unplayed.
  const bytesPerMs = 32
  let receivedMs = 0
  let worst = 0
  for (const chunk of media) {
    receivedMs += payloadOf(chunk).length / bytesPerMs
    worst = Math.max(worst, receivedMs - (chunk.at - media[0].at))
  }
  // 50 ms is scheduling slack on a shared machine; a sender that ignored the lead would be ~1 s over.
  t.ok(worst <= LEAD_MS + 50, `never more than the lead unplayed at the vendor: worst ${worst.toFixed(0)} ms`)
  t.ok(media.at(-1)!.at - media[0].at >= receivedMs - LEAD_MS - 50, 'paced over real time, not sent at once')
})

t.test('marks go out after the audio queued before them, and echoed marks become call.mark in order', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const { received, channel } = await voicebotCall(t, gateway, subscriber, 'CAmarks', 8000, true)
  const bot = await worker(t)
  await bot.audio(channel, 8000, pcmFrame(3200, 1))
  await bot.command(channel, { type: 'mark', name: 'first' })
  await bot.audio(channel, 8000, pcmFrame(1000, 2))
  await bot.command(channel, { type: 'mark', name: 'second' })

  await callMark(gateway, subscriber, 'second')
  t.match(subscriber.events('CAmarks').filter((event) => event.type === 'call.mark'), [{ name: 'first', cleared: false }, { name: 'second', cleared: false }])
  t.same(received.items.map(({ message }) => message.event === 'mark' ? `mark:${(message.mark as { name: string }).name}` : `media:${payloadOf({ at: 0, message }).length}`),
    ['media:3200', 'mark:first', 'media:3200', 'mark:second'], 'each mark follows the audio queued before it; the short utterance is padded to 3,200')
  t.match(received.items[1].message, { event: 'mark', stream_sid: 'MZCAmarks', mark: { name: 'first' } })
})

t.test('clear drops the queued audio, sends clear, and reports pending marks as cleared', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const { received, channel } = await voicebotCall(t, gateway, subscriber, 'CAclear', 16000)
  const bot = await worker(t)
  await bot.audio(channel, 16000, Buffer.alloc(32_000 * 2, 1)) // 2 s
  await bot.command(channel, { type: 'mark', name: 'never-played' })
  await bot.audio(channel, 16000, Buffer.alloc(32_000, 2))
  await bot.command(channel, { type: 'mark', name: 'also-dropped' })
  await received.waitFor(() => received.items.length >= 2, 'two chunks')
  await bot.command(channel, { type: 'clear' })

  await callMark(gateway, subscriber, 'also-dropped')
  const marks = subscriber.events('CAclear').filter((event) => event.type === 'call.mark')
  t.match(marks, [{ name: 'never-played', cleared: true }, { name: 'also-dropped', cleared: true }])
  const clear = await received.waitFor(({ message }) => message.event === 'clear', 'clear')
  t.match(clear.message, { event: 'clear', stream_sid: 'MZCAclear' })
  const clearAt = received.items.indexOf(clear)
  t.ok(received.items.slice(0, clearAt).every(({ message }) => message.event === 'media'), 'only audio went out before the clear, no mark')

  // The next thing the caller gets after clear is new audio: nothing of the old queue follows the clear.
  await bot.audio(channel, 16000, Buffer.alloc(3200, 3))
  const next = await received.waitFor((item) => received.items.indexOf(item) > clearAt, 'audio after clear')
  t.equal(next.message.event, 'media')
  t.ok(payloadOf(next).equals(Buffer.alloc(3200, 3)), 'it is the audio sent after the clear')
})

t.test('hang-up plays out what is queued, then closes the socket normally', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const { client, received, channel } = await voicebotCall(t, gateway, subscriber, 'CAbye', 8000)
  const bot = await worker(t)
  await bot.audio(channel, 8000, pcmFrame(6400, 1))
  await bot.command(channel, { type: 'hangup' })
  t.same(await client.closed, { code: 1000, reason: 'hangup' })
  t.equal(received.items.filter(({ message }) => message.event === 'media').reduce((sum, r) => sum + payloadOf(r).length, 0), 6400, 'the goodbye was sent first')
  t.match(await subscriber.waitForEvent('call.stop', 'CAbye'), { reason: 'hangup' })
})

t.test('Twilio gets μ-law at 8 kHz that round-trips within G.711 tolerance', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/twilio`)
  const received = new Collected<Record<string, unknown>>()
  client.ws.on('message', (data) => received.push(JSON.parse(data.toString()) as Record<string, unknown>))
  client.send({ event: 'start', start: { accountSid: 'AC1', streamSid: 'MZtw', callSid: 'CAtwout' }, streamSid: 'MZtw' })
  const { playback_channel: channel } = await subscriber.waitForEvent('call.start', 'CAtwout') as CallStartEvent
  const tone = Buffer.alloc(8000 * 2 / 2) // 0.5 s at 8 kHz
  for (let i = 0; i < tone.length / 2; i++) tone.writeInt16LE(Math.round(12000 * Math.sin((2 * Math.PI * 440 * i) / 8000)), i * 2)
  await (await worker(t)).audio(channel, 8000, tone)
  await (await worker(t)).command(channel, { type: 'mark', name: 'done' })
  const mark = await received.waitFor((message) => message.event === 'mark', 'the mark')
  t.match(mark, { event: 'mark', streamSid: 'MZtw', mark: { name: 'done' } })

  const media = received.items.filter((message) => message.event === 'media')
  t.ok(media.every((message) => message.streamSid === 'MZtw'), 'Twilio media shape, camelCase streamSid')
  const mulaw = Buffer.concat(media.map((message) => Buffer.from((message.media as { payload: string }).payload, 'base64')))
  t.equal(mulaw.length, tone.length / 2, 'one μ-law byte per sample, nothing padded')
  let worst = 0
  for (let i = 0; i < mulaw.length; i++) {
    const original = tone.readInt16LE(i * 2)
    const decoded = g711Decode(mulaw[i])
    // μ-law keeps 4 mantissa bits per segment: the error is at most half a step, 1/32 of the magnitude plus the bias.
    worst = Math.max(worst, Math.abs(decoded - original) / (Math.abs(original) / 32 + 8))
  }
  t.ok(worst <= 1, `every sample within half a G.711 step (worst ${worst.toFixed(2)} of the allowance)`)
})

/** G.711 μ-law decoding written out from the standard, independent of src/audio/mulaw.ts. */
function g711Decode (byte: number): number {
  const u = ~byte & 0xff
  const magnitude = ((((u & 0x0f) << 3) + 0x84) << ((u >> 4) & 7)) - 0x84
  return (u & 0x80) !== 0 ? -magnitude : magnitude
}

t.test('malformed playback messages are dropped, logged and counted; the call goes on', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const { received, channel } = await voicebotCall(t, gateway, subscriber, 'CAbadplay', 8000)
  const bot = await worker(t)
  const badHeader = (header: string): Buffer => {
    const json = Buffer.from(header)
    const length = Buffer.alloc(4)
    length.writeUInt32BE(json.length)
    return Buffer.concat([length, json, Buffer.alloc(320)])
  }
  const bad: Array<[Buffer | string, string]> = [
    ['{"type":"shout"}', 'unknown_command'],
    ['{"type":"mark"}', 'bad_mark'],
    ['{not json', 'bad_json'],
    [Buffer.from([0, 0]), 'bad_envelope'],
    [Buffer.from([0, 0, 0, 99, 1, 2]), 'bad_envelope'],
    [badHeader('{"sample_rate":4000}'), 'bad_sample_rate'],
    [badHeader('{"sample_rate":47999}'), 'bad_sample_rate'],
    [badHeader('{"encoding":"mulaw","sample_rate":8000}'), 'bad_encoding'],
    [badHeader('not json'), 'bad_json'],
    [Buffer.concat([badHeader('{"sample_rate":8000}'), Buffer.from([1])]), 'odd_length']
  ]
  for (const [message] of bad) await bot.raw(channel, message)
  await bot.audio(channel, 8000, Buffer.alloc(3200, 7))
  const first = await received.waitFor(() => true, 'audio')

  t.ok(payloadOf(first).equals(Buffer.alloc(3200, 7)), 'the first thing the caller gets is the good audio sent after the bad messages')
  const samples = await scrape(gateway.url)
  for (const [, reason] of bad) {
    t.equal(total(samples, 'rtaa_playback_dropped_total', { reason }), bad.filter(([, r]) => r === reason).length, `${reason} drops counted`)
  }
  const warnings = gateway.logs.items.filter((line) => line.msg === 'playback message dropped')
  t.equal(warnings.length, bad.length)
  t.match(warnings[0], { level: 40, interaction_id: 'CAbadplay', vendor: 'exotel', reason: 'unknown_command' })
})

t.test('PLAYBACK_MAX_BUFFER_MS bounds the queue: the newest audio past it is refused and counted', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { PLAYBACK_MAX_BUFFER_MS: '1000' })
  const { channel } = await voicebotCall(t, gateway, subscriber, 'CAfull', 8000)
  const bot = await worker(t)
  await Promise.all([bot.audio(channel, 8000, Buffer.alloc(16_000 * 0.9)), bot.audio(channel, 8000, Buffer.alloc(16_000 * 0.9))])
  const warning = await gateway.logs.waitFor((line) => line.msg === 'playback audio refused: queue full')
  t.match(warning, { level: 40, interaction_id: 'CAfull', max_ms: 1000 })
  t.equal(total(await scrape(gateway.url), 'rtaa_playback_dropped_total', { reason: 'buffer_full' }), 1)
})

t.test('playback still queued when the call ends is dropped and counted', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const { client, received, channel } = await voicebotCall(t, gateway, subscriber, 'CAgone', 8000)
  await (await worker(t)).audio(channel, 8000, Buffer.alloc(16_000 * 3))
  await received.waitFor(() => true, 'the first chunk')
  client.close()
  await subscriber.waitForEvent('call.stop', 'CAgone')
  t.equal(total(await scrape(gateway.url), 'rtaa_playback_dropped_total', { reason: 'call_ended' }), 1)
  t.match(gateway.logs.items.find((line) => line.msg === 'call ended with playback queued'), { interaction_id: 'CAgone' })
})

t.test('a call subscribes its playback channel while it is live, on the shared connection', async (t) => {
  const { gateway } = await startListenedGateway(t, redis.url)
  const counts = new Redis(redis.url)
  t.teardown(() => counts.disconnect())
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/exotel`)
  client.send(exotelStrings.start('CAsubscribed'))
  await gateway.logs.waitFor((line) => line.msg === 'call started')
  const channels = async (): Promise<string[]> => (await counts.pubsub('CHANNELS', `${gateway.prefix}playback:*`)) as string[]
  for (let tries = 0; (await channels()).length === 0 && tries < 100; tries++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.same(await channels(), [`${gateway.prefix}playback:{~ACxxxxxxxxxxxxxxxxxxxxxxxx:CAsubscribed}`], 'a two-way vendor\'s call subscribes its channel')
  client.close()
  await gateway.logs.waitFor((line) => line.msg === 'call ended')
  for (let tries = 0; (await channels()).length > 0 && tries < 100; tries++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.same(await channels(), [], 'and unsubscribes when it ends')
})

t.test('a lead shorter than one chunk still plays: a chunk goes whenever the vendor has nothing left', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { PLAYBACK_LEAD_MS: '100' })
  const { client, received, channel } = await voicebotCall(t, gateway, subscriber, 'CAshortlead', 8000)
  const bot = await worker(t)
  await bot.audio(channel, 8000, Buffer.alloc(3200 * 3, 5)) // three 200 ms chunks at 8 kHz
  await bot.command(channel, { type: 'hangup' })
  t.same(await client.closed, { code: 1000, reason: 'hangup' })
  t.equal(received.items.filter(({ message }) => message.event === 'media').length, 3)
})

t.test('a 24 kHz utterance into an 8 kHz call is resampled as it is sent, to the exact length', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const { received, channel } = await voicebotCall(t, gateway, subscriber, 'CAresample', 8000)
  const bot = await worker(t)
  await bot.audio(channel, 24000, pcmFrame(48_000 * 2, 9)) // 2 s at 24 kHz
  await bot.command(channel, { type: 'mark', name: 'end' })
  await received.waitFor(({ message }) => message.event === 'mark', 'the mark')
  const bytes = received.items.filter(({ message }) => message.event === 'media').map(payloadOf).reduce((sum, chunk) => sum + chunk.length, 0)
  t.equal(bytes, 32_000, '2 s at 8 kHz: ten 3,200-byte chunks, nothing lost to the filter, nothing padded')
})
