import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import t, { type Test } from 'tap'
import type { CallStartEvent } from '../src/bus/call-events.js'
import { writeWav } from '../src/audio/wav.js'
import { createTelnyxAdapter } from '../src/vendors/telnyx/telnyx-adapter.js'
import type { InboundEvent } from '../src/vendors/inbound-event.js'
import { TestRedis } from './helpers/redis-server.js'
import { startListenedGateway, type Gateway } from './helpers/gateway.js'
import { ProviderClient, pcmFrame, refusedUpgrade } from './helpers/exotel.js'
import { G711_ALAW, G711_MULAW } from './helpers/g711.js'
import { runServer } from './helpers/server-process.js'
import type { Subscriber } from './helpers/subscriber.js'
import { tool } from './helpers/tools.js'
import { Collected } from './helpers/waiter.js'
import { mostUnplayedMs, playbackWorker, type PlaybackWorker } from './helpers/playback-worker.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

const USER_ID = '3E6F995F-85F7-4705-9741-53B116D28237'
const STREAM_ID = '32DE0DEA-53CB-4B21-89A4-9E1819C043BC'
const CALL_CONTROL_ID = 'v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ'
const TOKEN = 'telnyx-stream-token-0123456789'

/**
 * Telnyx's messages as its docs show them (https://developers.telnyx.com/docs/voice/programmable-voice/media-streaming,
 * and the start's custom_parameters and the connected token from the AsyncAPI at
 * https://developers.telnyx.com/api-reference/websockets/stream-call-media-over-websocket), with our call ids and audio.
 */
const telnyx = {
  connected: (token?: string) => ({ event: 'connected', version: '1.0.0', ...(token === undefined ? {} : { connected: { 'x-telnyx-streaming-auth-token': token } }) }),
  start: (session: string, encoding = 'PCMU', sampleRate = 8000, userId = USER_ID) => ({
    event: 'start',
    sequence_number: '1',
    start: {
      user_id: userId,
      call_control_id: CALL_CONTROL_ID,
      call_session_id: session,
      from: '+13122010094',
      to: '+13122123456',
      tags: ['TAG1', 'TAG2'],
      client_state: 'aGF2ZSBhIG5pY2UgZGF5ID1d',
      custom_parameters: { customer_id: 'customer_123' },
      media_format: { encoding, sample_rate: sampleRate, channels: 1 }
    },
    stream_id: STREAM_ID
  }),
  media: (seq: number, chunk: number, payload: Buffer, track = 'inbound') => ({
    event: 'media',
    sequence_number: String(seq),
    media: { track, chunk: String(chunk), timestamp: String((chunk - 1) * 20), payload: payload.toString('base64') },
    stream_id: STREAM_ID
  }),
  dtmf: (seq: number) => ({ event: 'dtmf', stream_id: STREAM_ID, occurred_at: '2025-06-05T08:54:19.698408Z', sequence_number: String(seq), dtmf: { digit: '1' } }),
  mark: (seq: number, name = 'some_mark_name') => ({ event: 'mark', stream_id: STREAM_ID, sequence_number: String(seq), mark: { name } }),
  // The error frame's documented shape, filled with one of its listed errors.
  error: () => ({ event: 'error', payload: { code: 100003, title: 'malformed_frame', detail: 'Received frame was not formed correctly' }, stream_id: STREAM_ID }),
  stop: (seq: number) => ({ event: 'stop', sequence_number: String(seq), stop: { user_id: USER_ID, call_control_id: CALL_CONTROL_ID }, stream_id: STREAM_ID })
}

/** Every code word across four 20 ms frames, so the whole table crosses the wire. */
const g711Frames = [0, 1, 2, 3].map((i) => Buffer.from(Array.from({ length: 160 }, (_, j) => (i * 160 + j) % 256)))
const referencePcm = (table: number[], g711: Buffer): Buffer => {
  const pcm = Buffer.alloc(g711.length * 2)
  g711.forEach((byte, i) => pcm.writeInt16LE(table[byte], i * 2))
  return pcm
}
/** L16 as RTP carries it, written sample by sample: big-endian. */
const bigEndian = (pcm: Buffer): Buffer => {
  const l16 = Buffer.alloc(pcm.length)
  for (let i = 0; i < pcm.length; i += 2) l16.writeInt16BE(pcm.readInt16LE(i), i)
  return l16
}

for (const path of ['/v1/ingest/telnyx', '/v1/ingest']) {
  t.test(`a Telnyx call through ${path} lands on Redis under the same contract`, async (t) => {
    const { gateway, subscriber } = await startListenedGateway(t, redis.url)
    const session = `ff55a038-6f5d-11ef-9692-${String(path.length).padStart(12, '0')}`
    const client = await ProviderClient.connect(`${gateway.wsUrl}${path}`)
    client.send(telnyx.connected())
    client.send(telnyx.start(session))
    // "The order of events is not guaranteed": chunk 4 overtakes chunk 3.
    const chunks = [1, 2, 4, 3]
    g711Frames.forEach((frame, i) => client.send(telnyx.media(i + 2, chunks[i], frame)))
    client.send(telnyx.dtmf(6))
    client.send(telnyx.error())
    client.send(telnyx.mark(7))
    client.send(telnyx.stop(8))
    t.equal((await client.closed).code, 1000)

    const stop = await subscriber.waitForEvent('call.stop', session)
    t.match(subscriber.events(session)[0], {
      type: 'call.start',
      vendor: 'telnyx',
      interaction_id: session,
      tenant_id: USER_ID,
      stream_id: STREAM_ID,
      sample_rate: 8000,
      encoding: 'pcm_s16le',
      from: '+13122010094',
      to: '+13122123456'
    })
    t.same((subscriber.events(session)[0] as CallStartEvent).custom_parameters, {
      customer_id: 'customer_123', call_control_id: CALL_CONTROL_ID, client_state: 'aGF2ZSBhIG5pY2UgZGF5ID1d', tags: ['TAG1', 'TAG2']
    })
    const frames = subscriber.frames(session)
    t.equal(frames.length, g711Frames.length)
    t.ok(Buffer.concat(frames.map((f) => f.pcm)).equals(Buffer.concat(g711Frames.map((frame) => referencePcm(G711_MULAW, frame)))), 'PCM equals the G.711 μ-law reference decoding')
    t.match(frames.map((f) => f.header), chunks.map((chunk, i) => ({ seq: i + 1, vendor_seq: i + 2, timestamp_ms: (chunk - 1) * 20, sample_rate: 8000 })))
    t.match(subscriber.events(session).slice(1, 3), [{ type: 'call.dtmf', digit: '1', duration_ms: null }, { type: 'call.mark', name: 'some_mark_name' }])
    t.match(stop, { vendor: 'telnyx', reason: 'stopped', frames: 4, bytes: 4 * 320, gaps: 0, reordered: 1 }, 'the late chunk is counted as reordered, not lost')
    t.match(gateway.logs.items.find((line) => line.msg === 'the vendor reported an error; the call goes on'),
      { level: 40, vendor: 'telnyx', vendor_error: { code: '100003', title: 'malformed_frame', detail: 'Received frame was not formed correctly' } })
  })
}

t.test('PCMA decodes to the G.711 A-law reference, L16 from big-endian at the start\'s rate', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const alaw = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/telnyx`)
  alaw.send(telnyx.start('pcma-call', 'PCMA'))
  g711Frames.forEach((frame, i) => alaw.send(telnyx.media(i + 2, i + 1, frame)))
  alaw.send(telnyx.stop(6))
  t.equal((await alaw.closed).code, 1000)
  t.match(await subscriber.waitForEvent('call.stop', 'pcma-call'), { frames: 4, bytes: 4 * 320, gaps: 0 })
  t.match(subscriber.events('pcma-call')[0], { sample_rate: 8000 })
  t.ok(Buffer.concat(subscriber.frames('pcma-call').map((f) => f.pcm)).equals(Buffer.concat(g711Frames.map((frame) => referencePcm(G711_ALAW, frame)))), 'PCM equals the G.711 A-law reference decoding')

  const sent = [pcmFrame(640, 1), pcmFrame(640, 2)]
  const l16 = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  l16.send(telnyx.connected())
  l16.send(telnyx.start('l16-call', 'L16', 16000))
  sent.forEach((pcm, i) => l16.send(telnyx.media(i + 2, i + 1, bigEndian(pcm))))
  l16.send(telnyx.stop(4))
  t.equal((await l16.closed).code, 1000)
  t.match(await subscriber.waitForEvent('call.stop', 'l16-call'), { vendor: 'telnyx', frames: 2, bytes: 1280 })
  t.match(subscriber.events('l16-call')[0], { sample_rate: 16000 })
  const frames = subscriber.frames('l16-call')
  t.ok(Buffer.concat(frames.map((f) => f.pcm)).equals(Buffer.concat(sent)), 'the PCM sent, byte for byte')
  t.match(frames.map((f) => f.header), [{ sample_rate: 16000 }, { sample_rate: 16000 }])
})

t.test('a codec the gateway cannot decode is refused at start with 1003 and a log line naming it', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const cases: Array<[string, number, RegExp]> = [
    ['G722', 8000, /^Telnyx streams G722, which the gateway cannot decode/],
    ['OPUS', 16000, /^Telnyx streams OPUS, which the gateway cannot decode/],
    ['AMR-WB', 16000, /^Telnyx streams AMR-WB, which the gateway cannot decode/],
    ['L16', 44100, /^Telnyx streams L16 at 44100 Hz, which the gateway does not take: 8000 or 16000 Hz$/]
  ]
  for (const [encoding, rate, reason] of cases) {
    const session = `codec-${encoding}-${rate}`
    const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/telnyx`)
    client.send(telnyx.connected())
    client.send(telnyx.start(session, encoding, rate))
    client.send(telnyx.media(2, 1, Buffer.alloc(160)))
    const closed = await client.closed
    t.equal(closed.code, 1003, encoding)
    t.match(closed.reason, reason, encoding)
    t.match(await gateway.logs.waitFor((line) => line.msg === 'closing connection: bad input' && reason.test(String(line.reason)), `log line for ${encoding}`),
      { level: 40, vendor: 'telnyx', close_code: 1003 }, encoding)
    t.equal(subscriber.events(session).length, 0, `no call.start for ${encoding}`)
  }
})

t.test('bad Telnyx input is refused with 1007 and the path of what is wrong', async (t) => {
  const { gateway } = await startListenedGateway(t, redis.url)
  const noSession = telnyx.start('x') as { start: Record<string, unknown> }
  delete noSession.start.call_session_id
  const cases: Array<[string, unknown[], number, RegExp]> = [
    ['a start without call_session_id', [noSession], 1007, /^invalid start message at \/start\/call_session_id/],
    ['a call_session_id that cannot be a channel name', [telnyx.start('a b')], 1007, /^invalid start message at \/start\/call_session_id/],
    ['a track that is neither leg', [telnyx.start('bad-track'), telnyx.media(2, 1, Buffer.alloc(160), 'both')], 1007, /^invalid media message at \/media\/track/],
    ['a payload that is not base64', [telnyx.start('bad-b64'), { ...telnyx.media(2, 1, Buffer.alloc(160)), media: { track: 'inbound', chunk: '1', payload: 'no+J!!' } }], 1007, /^payload is not valid base64$/],
    ['L16 ending in half a sample', [telnyx.start('odd-l16', 'L16', 16000), telnyx.media(2, 1, Buffer.alloc(641))], 1007, /^payload holds 641 bytes, not a whole number of 16-bit samples$/],
    ['an error frame without its payload', [telnyx.start('bad-error'), { event: 'error', stream_id: STREAM_ID }], 1007, /^invalid error message at \/payload/]
  ]
  for (const [name, messages, code, reason] of cases) {
    const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/telnyx`)
    for (const message of messages) client.send(message)
    const closed = await client.closed
    t.equal(closed.code, code, name)
    t.match(closed.reason, reason, name)
  }
  const binary = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/telnyx`)
  binary.ws.send(Buffer.alloc(160), { binary: true })
  t.match(await binary.closed, { code: 1003, reason: 'binary frames are not part of the Telnyx protocol' })
})

t.test('the stream URL names the tracks: track=inbound_track (default), outbound_track or both_tracks, nothing else', async (t) => {
  const { gateway } = await startListenedGateway(t, redis.url)
  for (const query of ['track=both', 'track=inbound', 'track=both_tracks&track=inbound_track']) {
    const refused = await refusedUpgrade(`${gateway.wsUrl}/v1/ingest/telnyx?${query}`)
    t.equal(refused.status, 400, query)
    t.match(JSON.parse(refused.body), { message: /^track must be one of inbound_track, outbound_track, both_tracks; got / }, query)
  }
  t.match(gateway.logs.items.findLast((line) => line.msg === 'upgrade refused: bad request'), { vendor: 'telnyx', reason: /^track must be one of/ })
  // On the shared route too: the parameter is Telnyx's, so its refusal stands whoever connects.
  t.equal((await refusedUpgrade(`${gateway.wsUrl}/v1/ingest?track=all`)).status, 400)

  const adapter = createTelnyxAdapter({ playback: { codec: 'PCMU', sampleRate: 8000 } })
  const principal = { method: 'ip', ip: '127.0.0.1' } as const
  /** The events one stream's messages decode to, with the URL's query. */
  const decode = (query: Record<string, string>, ...messages: unknown[]): InboundEvent[] => {
    const context = adapter.accept({ query, principal })
    if ('error' in context) throw new Error(context.error)
    const decoder = adapter.createDecoder(context)
    return messages.map((message) => decoder.decode(Buffer.from(JSON.stringify(message)), false, false).event)
  }
  const frame = Buffer.alloc(160, 0xff)
  const [start, inbound, outbound] = decode({ track: 'both_tracks' }, telnyx.start('two-legs'), telnyx.media(2, 1, frame, 'inbound'), telnyx.media(3, 1, frame, 'outbound'))
  t.match(start, { kind: 'start', start: { callId: 'two-legs', tracks: ['inbound', 'outbound'] } }, 'both_tracks: the start announces both legs')
  t.match([inbound, outbound], [{ kind: 'media', track: 'inbound' }, { kind: 'media', track: 'outbound' }], 'each frame names its leg')

  const [agentStart, agent] = decode({ track: 'outbound_track' }, telnyx.start('agent-only'), { event: 'media', media: { payload: frame.toString('base64') } })
  t.match(agentStart, { kind: 'start', start: { tracks: ['outbound'] } })
  t.match(agent, { kind: 'media', track: 'outbound' }, 'an unlabelled frame of a one-leg stream is that leg')

  const [callerStart, caller] = decode({}, telnyx.start('caller-only'), telnyx.media(2, 1, frame))
  t.notOk('tracks' in (callerStart as { start: object }).start, 'inbound_track, the default: the one-track call of every vendor')
  t.match(caller, { kind: 'media', track: 'inbound' })
  t.throws(() => decode({ track: 'both_tracks' }, telnyx.start('unlabelled'), { event: 'media', media: { payload: frame.toString('base64') } }),
    { closeCode: 1007, message: 'media without media.track on a both_tracks stream' })
})

t.test('with TELNYX_STREAM_AUTH_TOKEN, the upgrade needs the x-telnyx-streaming-auth-token header', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { TELNYX_STREAM_AUTH_TOKEN: TOKEN, AUTH_IP_ALLOWLIST: '' })
  const url = `${gateway.wsUrl}/v1/ingest/telnyx`
  const header = (token: string): { headers: Record<string, string> } => ({ headers: { 'x-telnyx-streaming-auth-token': token } })

  const client = await ProviderClient.connect(url, header(TOKEN))
  client.send(telnyx.connected(TOKEN))
  client.send(telnyx.start('token-call'))
  client.send(telnyx.stop(2))
  t.equal((await client.closed).code, 1000)
  t.match(await subscriber.waitForEvent('call.stop', 'token-call'), { vendor: 'telnyx', tenant_id: USER_ID, tenant_verified: false })

  const wrong = await refusedUpgrade(url, header(`${TOKEN}x`))
  t.equal(wrong.status, 401, 'another token is refused')
  const failure = gateway.logs.items.findLast((line) => line.msg === 'authentication failed')
  t.match(failure, { auth_method: 'telnyx-token', reason: 'bad_token' })
  t.notMatch(JSON.stringify(failure), TOKEN, 'the log line does not quote the token')

  const missing = await refusedUpgrade(url)
  t.equal(missing.status, 401, 'no token at all is refused')
  t.match(gateway.logs.items.findLast((line) => line.msg === 'authentication failed'), { auth_method: 'ip', reason: 'credentials_required' })

  // The copy of the token in connected must agree with the header that admitted the connection.
  const mismatched = await ProviderClient.connect(url, header(TOKEN))
  mismatched.send(telnyx.connected('another-token-entirely'))
  t.match(await mismatched.closed, { code: 1008, reason: 'connected carries an x-telnyx-streaming-auth-token that does not match' })

  // On the shared endpoint the token admits the connection as Telnyx, and only as Telnyx.
  const shared = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`, header(TOKEN))
  shared.send({ event: 'connected' })
  shared.send(telnyx.start('token-shared'))
  shared.send(telnyx.stop(2))
  t.equal((await shared.closed).code, 1000)
  t.match(await subscriber.waitForEvent('call.stop', 'token-shared'), { vendor: 'telnyx' })
})

t.test('TELNYX_USER_ID: the token vouches for its account, and a start naming another is refused', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { TELNYX_STREAM_AUTH_TOKEN: TOKEN, TELNYX_USER_ID: USER_ID })
  const url = `${gateway.wsUrl}/v1/ingest/telnyx`
  const headers = { 'x-telnyx-streaming-auth-token': TOKEN }
  const own = await ProviderClient.connect(url, { headers })
  own.send(telnyx.start('own-account'))
  own.send(telnyx.stop(2))
  t.equal((await own.closed).code, 1000)
  t.match(await subscriber.waitForEvent('call.start', 'own-account'), { tenant_id: USER_ID, tenant_verified: true })

  const other = await ProviderClient.connect(url, { headers })
  other.send(telnyx.start('other-account', 'PCMU', 8000, 'f5586561-8ff0-4291-a51b-c7dfe4139ff9'))
  t.match(await other.closed, { code: 1008, reason: /^account f5586561-8ff0-4291-a51b-c7dfe4139ff9 is not one this credential may stream for/ })
})

const worker = (t: Test): PlaybackWorker => playbackWorker(t, redis.url)

interface Received {
  at: number
  message: Record<string, unknown>
}

/** A bidirectional Telnyx stream: records what the gateway sends with its arrival time, and can echo marks. */
async function bidirectionalCall (t: Test, gateway: Gateway, subscriber: Subscriber, session: string, echoMarks = false): Promise<{ client: ProviderClient, received: Collected<Received>, channel: string }> {
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/telnyx`)
  t.teardown(() => client.ws.terminate())
  const received = new Collected<Received>()
  client.ws.on('message', (data) => {
    const message = JSON.parse(data.toString()) as Record<string, unknown>
    received.push({ at: performance.now(), message })
    if (echoMarks && message.event === 'mark') client.send(telnyx.mark(99, (message.mark as { name: string }).name))
  })
  client.send(telnyx.connected())
  client.send(telnyx.start(session))
  const { playback_channel: channel } = await subscriber.waitForEvent('call.start', session) as CallStartEvent
  return { client, received, channel }
}

const payloadOf = ({ message }: Received): Buffer => Buffer.from((message.media as { payload: string }).payload, 'base64')
const mediaOf = (received: Collected<Received>): Received[] => received.items.filter(({ message }) => message.event === 'media')

t.test('playback: PCMU at 8 kHz in 100 ms messages, never under 20 ms, paced within the lead; marks echo as call.mark', async (t) => {
  const lead = 400
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { PLAYBACK_LEAD_MS: String(lead) })
  const { received, channel } = await bidirectionalCall(t, gateway, subscriber, 'play-pcmu', true)
  const bot = await worker(t)
  const input = Buffer.concat([...Array.from({ length: 11 }, (_, i) => pcmFrame(1600, i)), pcmFrame(160, 11)]) // 1.11 s at 8 kHz
  await bot.audio(channel, 8000, input)
  await bot.command(channel, { type: 'mark', name: 'said-it' })

  t.match(await subscriber.waitForEvent('call.mark', 'play-pcmu'), { name: 'said-it', cleared: false }, 'the echoed mark is published')
  const media = mediaOf(received)
  t.ok(media.every(({ message }) => Object.keys(message).sort().join() === 'event,media' && Object.keys(message.media as object).join() === 'payload'),
    'Telnyx media shape: {"event":"media","media":{"payload":…}}')
  const sizes = media.map((item) => payloadOf(item).length)
  t.same(sizes, [...Array(11).fill(800), 160], '100 ms of μ-law a message; the last 10 ms padded to Telnyx\'s 20 ms minimum')
  // Decoded with the reference table, each sample is the input's within half a μ-law step; the padding is silence.
  const played = referencePcm(G711_MULAW, Buffer.concat(media.map(payloadOf)))
  let off = 0
  for (let i = 0; i < input.length; i += 2) {
    const sample = input.readInt16LE(i)
    if (Math.abs(played.readInt16LE(i) - sample) > Math.max(16, Math.abs(sample) / 16)) off++
  }
  t.equal(off, 0, 'the audio is the input in G.711 μ-law')
  t.ok(played.subarray(input.length).equals(Buffer.alloc(played.length - input.length)), 'then silence')
  t.match(received.items.at(-1)?.message, { event: 'mark', mark: { name: 'said-it' } })
  t.equal(Object.keys(received.items.at(-1)?.message ?? {}).sort().join(), 'event,mark', 'Telnyx mark shape: {"event":"mark","mark":{"name":…}}')

  const worst = mostUnplayedMs(media.map((item) => ({ at: item.at, ms: payloadOf(item).length / 8 })))
  // 50 ms is scheduling slack on a shared machine; a sender that ignored the lead would be ~700 ms over.
  t.ok(worst <= lead + 50, `never more than the lead unplayed at Telnyx: worst ${worst.toFixed(0)} ms`)
})

t.test('playback in L16 at 16 kHz (TELNYX_PLAYBACK_CODEC=L16): big-endian, byte for byte; the short end padded to 20 ms', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { TELNYX_PLAYBACK_CODEC: 'L16', TELNYX_PLAYBACK_SAMPLE_RATE: '16000' })
  const { received, channel } = await bidirectionalCall(t, gateway, subscriber, 'play-l16')
  const input = Buffer.concat([pcmFrame(3200, 1), pcmFrame(320, 2)]) // 110 ms at 16 kHz
  await (await worker(t)).audio(channel, 16000, input)
  await received.waitFor(() => mediaOf(received).length === 2, 'two media messages')
  const [first, last] = mediaOf(received).map(payloadOf)
  t.equal(first.length, 3200, '100 ms')
  t.equal(last.length, 640, 'the last 10 ms padded to Telnyx\'s 20 ms minimum')
  t.ok(first.equals(bigEndian(input.subarray(0, 3200))), 'network byte order, the PCM unchanged')
  t.ok(last.equals(Buffer.concat([bigEndian(input.subarray(3200)), Buffer.alloc(320)])), 'then zeros')
})

t.test('clear sends {"event":"clear"}; the marks it drops are call.mark cleared, and Telnyx\'s echo of them is not published again', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const { client, received, channel } = await bidirectionalCall(t, gateway, subscriber, 'play-clear')
  const bot = await worker(t)
  await bot.audio(channel, 8000, Buffer.alloc(16_000 * 2, 1)) // 2 s
  await bot.command(channel, { type: 'mark', name: 'never-played' })
  await received.waitFor(() => mediaOf(received).length >= 2, 'two chunks')
  await bot.command(channel, { type: 'clear' })

  const clear = await received.waitFor(({ message }) => message.event === 'clear', 'clear')
  t.same(clear.message, { event: 'clear' })
  t.match(await subscriber.waitForEvent('call.mark', 'play-clear'), { name: 'never-played', cleared: true })
  // "the clear message will also result in all queued marks being sent back": Telnyx's echo, then the stop.
  client.send(telnyx.mark(50, 'never-played'))
  client.send(telnyx.stop(51))
  await subscriber.waitForEvent('call.stop', 'play-clear')
  t.equal(subscriber.events('play-clear').filter((event) => event.type === 'call.mark').length, 1, 'one call.mark for the cleared mark')
})

t.test('SUPPORT_TELNYX defaults to true; false gives 404; bad settings stop the process with 78', async (t) => {
  const on = await startListenedGateway(t, redis.url)
  const client = await ProviderClient.connect(`${on.gateway.wsUrl}/v1/ingest/telnyx`)
  t.pass('the route is served by default')
  client.close()
  await client.closed

  const off = await startListenedGateway(t, redis.url, { SUPPORT_TELNYX: 'false' })
  t.equal((await fetch(`${off.gateway.url}/v1/ingest/telnyx`)).status, 404)

  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ TELNYX_PLAYBACK_CODEC: 'G722' }, /TELNYX_PLAYBACK_CODEC must be equal to one of the allowed values \(PCMU, PCMA, L16\)/],
    [{ TELNYX_PLAYBACK_CODEC: 'PCMA', TELNYX_PLAYBACK_SAMPLE_RATE: '16000' }, /TELNYX_PLAYBACK_CODEC=PCMA plays at 8000 Hz only; TELNYX_PLAYBACK_SAMPLE_RATE is 16000/],
    [{ TELNYX_STREAM_AUTH_TOKEN: 'short' }, /TELNYX_STREAM_AUTH_TOKEN must NOT have fewer than 16 characters/]
  ]
  for (const [env, message] of bad) {
    const server = runServer(t.testdir(), env)
    t.equal(await server.exited, 78, JSON.stringify(env))
    t.match(server.stderr(), message, JSON.stringify(env))
  }
})

t.test('rtaa-sim --vendor telnyx completes calls against a real gateway', async (t) => {
  const dir = t.testdir()
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { TELNYX_STREAM_AUTH_TOKEN: TOKEN })
  const pcm = Buffer.concat(Array.from({ length: 10 }, (_, i) => pcmFrame(640, i))) // 200 ms at 16 kHz
  writeFileSync(join(dir, 'input.wav'), writeWav(pcm, 16000))

  // L16 at 16 kHz, admitted by the token the option passes as Telnyx's header.
  const sim = await tool('rtaa-sim', ['--url', `${gateway.wsUrl}/v1/ingest`, '--vendor', 'telnyx', '--telnyx-stream-auth-token', TOKEN,
    '--sample-rate', '16000', '--wav', 'input.wav', '--dtmf', '5', '--call-prefix', 'simtx'], dir).done
  t.equal(sim.code, 0, sim.stderr)
  t.match(JSON.parse(sim.stdout), { vendor: 'telnyx', sample_rate: 16000, completed: 1, failed: 0, frames_sent: 10 })
  t.match(await subscriber.waitForEvent('call.stop', 'simtx-1'), { vendor: 'telnyx', reason: 'stopped', frames: 10, gaps: 0 })
  t.match(subscriber.events('simtx-1')[0], { sample_rate: 16000, custom_parameters: { simulator: 'rtaa-sim', call_control_id: 'v3:simtx-1' } })
  t.match(subscriber.events('simtx-1')[1], { type: 'call.dtmf', digit: '5' })
  t.ok(Buffer.concat(subscriber.frames('simtx-1').map((f) => f.pcm)).equals(pcm), 'the WAV, byte for byte')

  // The token is read from the environment as the gateway reads it; both legs, on a URL the simulator completes.
  const both = await tool('rtaa-sim', ['--url', `${gateway.wsUrl}/v1/ingest/telnyx`, '--vendor', 'telnyx', '--tracks', 'both', '--duration', '0.2', '--call-prefix', 'simboth'],
    dir, { TELNYX_STREAM_AUTH_TOKEN: TOKEN }).done
  t.equal(both.code, 0, both.stderr)
  t.match(JSON.parse(both.stdout), { url: `${gateway.wsUrl}/v1/ingest/telnyx?track=both_tracks`, completed: 1, frames_sent: 20 })
  t.match(await subscriber.waitForEvent('call.stop', 'simboth-1'), { vendor: 'telnyx', reason: 'stopped' })
})

t.test('rtaa-sim --vendor telnyx --voicebot answers marks and saves what the gateway played', async (t) => {
  const dir = t.testdir()
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const sim = tool('rtaa-sim', ['--url', `${gateway.wsUrl}/v1/ingest/telnyx`, '--vendor', 'telnyx', '--voicebot', '--duration', '1', '--call-prefix', 'txbot', '--playback-dir', 'played'], dir).done
  const { playback_channel: channel } = await subscriber.waitForEvent('call.start', 'txbot-1') as CallStartEvent
  const bot = await worker(t)
  await bot.audio(channel, 8000, Buffer.alloc(1600)) // 100 ms of silence: μ-law carries it exactly
  await bot.command(channel, { type: 'mark', name: 'said-it' })
  const run = await sim
  t.equal(run.code, 0, run.stderr)
  t.match(JSON.parse(run.stdout), { results: [{ playback_bytes: 1600 }] })
  t.match(await subscriber.waitForEvent('call.mark', 'txbot-1'), { name: 'said-it', cleared: false }, 'the mark came back through the simulator')
})
