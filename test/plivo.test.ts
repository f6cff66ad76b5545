import { createHmac } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import t, { type Test } from 'tap'
import type { CallStartEvent } from '../src/bus/call-events.js'
import { loadConfig } from '../src/config.js'
import type { AuthRequest } from '../src/auth/auth-method.js'
import { createPlivoAdapter, parseExtraHeaders } from '../src/vendors/plivo/plivo-adapter.js'
import { createPlivoSignatureMethod } from '../src/vendors/plivo/plivo-signature.js'
import { createTwilioAdapter } from '../src/vendors/twilio/twilio-adapter.js'
import { createExotelAdapter } from '../src/vendors/exotel/exotel-adapter.js'
import type { InboundEvent } from '../src/vendors/inbound-event.js'
import { TestRedis } from './helpers/redis-server.js'
import { startListenedGateway, type Gateway } from './helpers/gateway.js'
import { ProviderClient, refusedUpgrade } from './helpers/exotel.js'
import { runServer } from './helpers/server-process.js'
import { Subscriber } from './helpers/subscriber.js'
import { startToolsGateway, tool } from './helpers/tools.js'
import { Collected } from './helpers/waiter.js'
import { mostUnplayedMs, playbackWorker, type PlaybackWorker } from './helpers/playback-worker.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

/**
 * Plivo's messages as its protocol reference shows them
 * (https://plivo.com/docs/voice-agents/audio-streaming/concepts/audio-streaming-reference), with our ids and audio.
 * `played` is the checkpoint answer as a support article names it
 * (https://support.plivo.com/hc/en-us/articles/32800564168345-How-do-I-know-if-the-buffered-audio-is-played); `stop`
 * is the one of Plivo's Java stream SDK (https://github.com/plivo/plivo-stream-sdk-java, event/StopEvent.java).
 */
const STREAM_ID = '87654321-4321-4321-4321-cba987654321'
const EXTRA_HEADERS = 'userId=12345;sessionId=abc-xyz'
const plivo = {
  start: (callId: string, mediaFormat: { encoding: string, sampleRate: number } = { encoding: 'audio/x-mulaw', sampleRate: 8000 }, tracks = ['inbound']) => ({
    event: 'start',
    sequenceNumber: 1,
    start: { callId, streamId: STREAM_ID, accountId: 'MAXXXXXXXXXXXXXXXXXX', tracks, mediaFormat },
    extra_headers: EXTRA_HEADERS
  }),
  media: (seq: number, audio: Buffer, track = 'inbound') => ({
    event: 'media',
    sequenceNumber: seq,
    streamId: STREAM_ID,
    media: { track, timestamp: String(1705312200000 + (seq - 2) * 20), chunk: seq - 1, payload: audio.toString('base64') },
    extra_headers: EXTRA_HEADERS
  }),
  dtmf: () => ({
    event: 'dtmf', sequenceNumber: 50, streamId: STREAM_ID, dtmf: { track: 'inbound', digit: '5', timestamp: '1705312250000' }, extra_headers: EXTRA_HEADERS
  }),
  playedStream: (name = 'greeting-complete') => ({ event: 'playedStream', sequenceNumber: 75, streamId: STREAM_ID, name }),
  played: (name = 'customer greeting audio') => ({ event: 'played', streamId: STREAM_ID, name }),
  clearedAudio: () => ({ event: 'clearedAudio', sequenceNumber: 80, streamId: STREAM_ID }),
  stop: () => ({ event: 'stop', sequenceNumber: 90, streamId: STREAM_ID })
}

/** G.711 μ-law decoding written out from the standard, independent of src/audio/mulaw.ts. */
function g711Decode (byte: number): number {
  const u = ~byte & 0xff
  const magnitude = ((((u & 0x0f) << 3) + 0x84) << ((u >> 4) & 7)) - 0x84
  return (u & 0x80) !== 0 ? -magnitude : magnitude
}

/** Every μ-law code word across four 20 ms frames, so the whole table crosses the wire. */
const mulawFrames = [0, 1, 2, 3].map((i) => Buffer.from(Array.from({ length: 160 }, (_, j) => (i * 160 + j) % 256)))
const g711Pcm = (mulaw: Buffer): Buffer => {
  const pcm = Buffer.alloc(mulaw.length * 2)
  mulaw.forEach((byte, i) => pcm.writeInt16LE(g711Decode(byte), i * 2))
  return pcm
}

/** Samples as L16 in Plivo's byte order, little-endian (see PLIVO_FORMATS). */
const l16 = (samples: number[]): Buffer => {
  const pcm = Buffer.alloc(samples.length * 2)
  samples.forEach((sample, i) => pcm.writeInt16LE(sample, i * 2))
  return pcm
}
const ramp = (count: number, seed: number): number[] => Array.from({ length: count }, (_, i) => ((seed * 7919 + i * 997) % 65536) - 32768)

for (const path of ['/v1/ingest/plivo', '/v1/ingest']) {
  t.test(`a μ-law Plivo call through ${path} lands on Redis under the same contract`, async (t) => {
    const { gateway, subscriber } = await startListenedGateway(t, redis.url)
    const callId = path === '/v1/ingest' ? '12345678-1234-1234-1234-123456789abc' : '12345678-1234-1234-1234-1234567890ab'
    const client = await ProviderClient.connect(`${gateway.wsUrl}${path}`)
    client.send(plivo.start(callId))
    mulawFrames.forEach((frame, i) => client.send(plivo.media(i + 2, frame)))
    client.send(plivo.dtmf())
    client.send(plivo.playedStream())
    client.send(plivo.played())
    client.send(plivo.clearedAudio())
    // Plivo ends a stream by closing the socket; its Java SDK knows a stop message too.
    if (path === '/v1/ingest') client.send(plivo.stop())
    else client.close()
    t.equal((await client.closed).code, path === '/v1/ingest' ? 1000 : 1005)

    const stop = await subscriber.waitForEvent('call.stop', callId)
    t.match(subscriber.events(callId)[0], {
      type: 'call.start',
      vendor: 'plivo',
      interaction_id: callId,
      tenant_id: 'MAXXXXXXXXXXXXXXXXXX',
      stream_id: STREAM_ID,
      sample_rate: 8000,
      encoding: 'pcm_s16le',
      from: null,
      to: null,
      custom_parameters: { userId: '12345', sessionId: 'abc-xyz' }
    })
    const frames = subscriber.frames(callId)
    t.ok(Buffer.concat(frames.map((f) => f.pcm)).equals(Buffer.concat(mulawFrames.map(g711Pcm))), 'PCM equals the G.711 decoding of the μ-law')
    t.match(frames.map((f) => f.header), mulawFrames.map((_, i) => ({ seq: i + 1, vendor_seq: i + 2, timestamp_ms: i * 20, sample_rate: 8000 })),
      'Plivo\'s Unix-millisecond timestamps count from the first frame')
    t.match(subscriber.events(callId).slice(1, 4), [
      { type: 'call.dtmf', digit: '5', duration_ms: null },
      { type: 'call.mark', name: 'greeting-complete', cleared: false },
      { type: 'call.mark', name: 'customer greeting audio', cleared: false }
    ], 'playedStream and played are both marks; clearedAudio publishes nothing')
    t.match(stop, { vendor: 'plivo', reason: path === '/v1/ingest' ? 'stopped' : 'disconnected', frames: 4, bytes: 4 * 320, gaps: 0 })
  })
}

t.test('L16 passes through byte for byte at 8 and 16 kHz, as little-endian samples', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  for (const sampleRate of [16000, 8000]) {
    const callId = `CAl16-${sampleRate}`
    const samples = [0, 1, 2].map((i) => ramp(sampleRate / 50, i + sampleRate))
    const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
    client.send(plivo.start(callId, { encoding: 'audio/x-l16', sampleRate }))
    samples.forEach((frame, i) => client.send(plivo.media(i + 2, l16(frame))))
    client.send(plivo.stop())
    t.equal((await client.closed).code, 1000)
    t.match(await subscriber.waitForEvent('call.stop', callId), { vendor: 'plivo', frames: 3, bytes: 3 * sampleRate / 25 })
    t.match(subscriber.events(callId)[0], { sample_rate: sampleRate })
    const published = Buffer.concat(subscriber.frames(callId).map((f) => f.pcm))
    t.same(Array.from({ length: published.length / 2 }, (_, i) => published.readInt16LE(i * 2)), samples.flat(), `${sampleRate} Hz: the samples Plivo sent`)
  }
})

t.test('the decoder labels each frame with its track and the start with the tracks it announces', async (t) => {
  // <Stream audioTrack="both"> (https://plivo.com/docs/voice/xml/audiostream): the start lists both legs.
  const decoder = createPlivoAdapter({}).createDecoder({ principal: { method: 'ip', ip: '127.0.0.1' } })
  const decode = (message: unknown): InboundEvent => decoder.decode(Buffer.from(JSON.stringify(message)), false, false).event
  t.match(decode(plivo.start('CAboth', undefined, ['inbound', 'outbound'])), { kind: 'start', start: { tracks: ['inbound', 'outbound'] } })
  t.match(decode(plivo.media(2, mulawFrames[0], 'inbound')), { kind: 'media', track: 'inbound', timestampMs: 0, chunk: 1 })
  t.match(decode(plivo.media(3, mulawFrames[1], 'outbound')), { kind: 'media', track: 'outbound', timestampMs: 20, chunk: 2 }, 'both tracks\' timestamps count from the stream\'s first frame')
  t.match(decode(plivo.media(4, mulawFrames[2], 'inbound')), { kind: 'media', track: 'inbound', timestampMs: 40 })
  const oneTrack = createPlivoAdapter({}).createDecoder({ principal: { method: 'ip', ip: '127.0.0.1' } })
  const { tracks } = (oneTrack.decode(Buffer.from(JSON.stringify(plivo.start('CAone'))), false, false).event as { start: { tracks?: unknown } }).start
  t.same(tracks, ['inbound'])
})

t.test('extraHeaders become custom parameters, whichever separator Plivo\'s pages show', async (t) => {
  t.same(parseExtraHeaders('userId=12345;sessionId=abc-xyz'), { userId: '12345', sessionId: 'abc-xyz' })
  t.same(parseExtraHeaders('test1=12,test2=123'), { test1: '12', test2: '123' }, 'https://plivo.com/docs/voice/xml/audiostream')
  t.same(parseExtraHeaders(' a = 1 ;; =orphan;flag;b=x=y;__proto__=p'), { a: '1', b: 'x=y', ['__proto__']: 'p' })
  t.equal(Object.getPrototypeOf(parseExtraHeaders('__proto__=p')), Object.prototype, 'a key cannot reach the prototype')
  t.same(parseExtraHeaders(undefined), {})
})

t.test('detection: Plivo claims its start by start.callId and start.streamId, and Twilio and Exotel do not', async (t) => {
  const plivoAdapter = createPlivoAdapter({})
  const twilioAdapter = createTwilioAdapter({})
  const exotelAdapter = createExotelAdapter(8000)
  const start = plivo.start('CAdetect')
  t.equal(plivoAdapter.detect(start), 'yes')
  t.equal(twilioAdapter.detect(start), 'maybe', 'Twilio claims streamSid, start.callSid and start.accountSid, none of which Plivo sends')
  t.equal(exotelAdapter.detect(start), 'maybe')
  t.equal(plivoAdapter.detect({ event: 'connected', protocol: 'Call', version: '1.0.0' }), 'no', 'Plivo sends no connected')
  t.equal(plivoAdapter.detect({ event: 'connected' }), 'no')
  t.equal(plivoAdapter.detect({ event: 'start', sequenceNumber: '1', start: { accountSid: 'AC1', streamSid: 'MZ1', callSid: 'CA1' }, streamSid: 'MZ1' }), 'maybe', 'Twilio\'s start is not Plivo\'s to refuse')
  t.equal(plivoAdapter.detect({ sequenceNumber: 1 }), 'no')
})

t.test('bad Plivo input is refused with the close code that says why', async (t) => {
  const { gateway } = await startListenedGateway(t, redis.url)
  const cases: Array<[string, unknown[], number, RegExp]> = [
    ['a start without callId', [{ ...plivo.start('x'), start: { ...plivo.start('x').start, callId: undefined } }], 1007, /^invalid start message at \/start\/callId/],
    ['a call id that cannot be a channel name', [plivo.start('call id with spaces')], 1007, /^invalid start message at \/start\/callId/],
    ['A-law', [plivo.start('CAalaw', { encoding: 'audio/x-alaw', sampleRate: 8000 })], 1003, /^Plivo audio "audio\/x-alaw" at 8000 Hz is not supported: use audio\/x-mulaw at 8000, audio\/x-l16 at 8000 or 16000$/],
    ['μ-law at 16 kHz', [plivo.start('CAmulaw16', { encoding: 'audio/x-mulaw', sampleRate: 16000 })], 1003, /^Plivo audio "audio\/x-mulaw" at 16000 Hz is not supported/],
    ['L16 at 24 kHz', [plivo.start('CAl16at24', { encoding: 'audio/x-l16', sampleRate: 24000 })], 1003, /at 24000 Hz is not supported/],
    ['a track Plivo does not name', [plivo.start('CAtrack', undefined, ['both'])], 1007, /^invalid start message at \/start\/tracks\/0/],
    ['a payload that is not base64', [plivo.start('CAb64'), { ...plivo.media(2, Buffer.alloc(0)), media: { ...plivo.media(2, Buffer.alloc(0)).media, payload: 'not*base64' } }], 1007, /^payload is not valid base64$/],
    ['L16 of an odd number of bytes', [plivo.start('CAodd', { encoding: 'audio/x-l16', sampleRate: 8000 }), plivo.media(2, Buffer.alloc(321))], 1007, /not a whole number of 16-bit samples/],
    ['a media message without payload', [plivo.start('CAnopayload'), { event: 'media', streamId: STREAM_ID, media: { track: 'inbound' } }], 1007, /^invalid media message at \/media\/payload/],
    ['a checkpoint answer without name', [plivo.start('CAnoname'), { event: 'playedStream', streamId: STREAM_ID }], 1007, /^invalid playedStream message at \/name/],
    ['media before start', [plivo.media(2, mulawFrames[0])], 1008, /^media before start$/]
  ]
  for (const [name, messages, code, reason] of cases) {
    const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/plivo`)
    for (const message of messages) client.send(message)
    const closed = await client.closed
    t.equal(closed.code, code, name)
    t.match(closed.reason, reason, name)
  }
  const binary = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/plivo`)
  binary.ws.send(Buffer.from([1, 2, 3, 4]), { binary: true })
  t.same(await binary.closed, { code: 1003, reason: 'binary frames are not part of the Plivo protocol' })
})

const worker = (t: Test): PlaybackWorker => playbackWorker(t, redis.url)

interface Heard {
  at: number
  message: Record<string, unknown>
}

/** A bidirectional Plivo stream: records what the gateway plays, and answers checkpoints and clearAudio as Plivo does. */
async function plivoCall (t: Test, gateway: Gateway, subscriber: Subscriber, callId: string, mediaFormat?: { encoding: string, sampleRate: number }): Promise<{ heard: Collected<Heard>, channel: string }> {
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/plivo`)
  t.teardown(() => client.ws.terminate())
  const heard = new Collected<Heard>()
  client.ws.on('message', (data) => {
    const message = JSON.parse(data.toString()) as Record<string, unknown>
    heard.push({ at: performance.now(), message })
    if (message.event === 'checkpoint') client.send({ event: 'playedStream', sequenceNumber: 99, streamId: message.streamId, name: message.name })
    if (message.event === 'clearAudio') client.send({ event: 'clearedAudio', sequenceNumber: 100, streamId: message.streamId })
  })
  client.send(plivo.start(callId, mediaFormat))
  const { playback_channel: channel } = await subscriber.waitForEvent('call.start', callId) as CallStartEvent
  return { heard, channel }
}

const payloadOf = ({ message }: Heard): Buffer => Buffer.from((message.media as { payload: string }).payload, 'base64')

t.test('playback to a μ-law call: playAudio of 100 ms μ-law at 8 kHz, paced within the lead, then the checkpoint', async (t) => {
  const leadMs = 400
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { PLAYBACK_LEAD_MS: String(leadMs) })
  const { heard, channel } = await plivoCall(t, gateway, subscriber, 'CAplaymulaw')
  const tone = Buffer.alloc(8000 * 2 * 1.25) // 1.25 s at 8 kHz
  for (let i = 0; i < tone.length / 2; i++) tone.writeInt16LE(Math.round(12000 * Math.sin((2 * Math.PI * 440 * i) / 8000)), i * 2)
  const bot = await worker(t)
  await bot.audio(channel, 8000, tone)
  await bot.command(channel, { type: 'mark', name: 'said-it' })

  t.match(await subscriber.waitForEvent('call.mark', 'CAplaymulaw'), { name: 'said-it', cleared: false }, 'playedStream became call.mark')
  const checkpoint = await heard.waitFor(({ message }) => message.event === 'checkpoint', 'the checkpoint')
  t.same(checkpoint.message, { event: 'checkpoint', streamId: STREAM_ID, name: 'said-it' })
  const media = heard.items.slice(0, heard.items.indexOf(checkpoint))
  t.ok(media.every(({ message }) => message.event === 'playAudio' && Object.keys(message).sort().join() === 'event,media'), 'only playAudio before the checkpoint, in Plivo\'s shape')
  t.ok(media.every(({ message }) => { const m = message.media as Record<string, unknown>; return m.contentType === 'audio/x-mulaw' && m.sampleRate === 8000 }), 'in the stream\'s contentType and rate')
  t.same(media.map((item) => payloadOf(item).length), [...Array(12).fill(800), 400], '100 ms a message, the rest in the last')
  const mulaw = Buffer.concat(media.map(payloadOf))
  let worst = 0
  for (let i = 0; i < mulaw.length; i++) {
    const original = tone.readInt16LE(i * 2)
    // μ-law keeps 4 mantissa bits per segment: the error is at most half a step, 1/32 of the magnitude plus the bias.
    worst = Math.max(worst, Math.abs(g711Decode(mulaw[i]) - original) / (Math.abs(original) / 32 + 8))
  }
  t.ok(worst <= 1, `every sample within half a G.711 step (worst ${worst.toFixed(2)} of the allowance)`)
  const ahead = mostUnplayedMs(media.map((item) => ({ at: item.at, ms: payloadOf(item).length / 8 })))
  // 50 ms is scheduling slack on a shared machine; a sender that ignored the lead would be ~850 ms over.
  t.ok(ahead <= leadMs + 50, `never more than the lead unplayed at Plivo: worst ${ahead.toFixed(0)} ms`)
})

t.test('playback to an L16 call is L16 at the call\'s rate, unchanged; clearAudio drops the rest and reports its checkpoints', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const { heard, channel } = await plivoCall(t, gateway, subscriber, 'CAplayl16', { encoding: 'audio/x-l16', sampleRate: 16000 })
  const bot = await worker(t)
  const speech = l16(ramp(16000 * 2, 5)) // 2 s at 16 kHz
  await bot.audio(channel, 16000, speech)
  await bot.command(channel, { type: 'mark', name: 'never-played' })
  const first = await heard.waitFor(({ message }) => message.event === 'playAudio', 'audio')
  t.same(first.message.media, { contentType: 'audio/x-l16', sampleRate: 16000, payload: speech.subarray(0, 3200).toString('base64') }, '100 ms of the worker\'s PCM, as it was')

  await bot.command(channel, { type: 'clear' })
  const clear = await heard.waitFor(({ message }) => message.event === 'clearAudio', 'clearAudio')
  t.same(clear.message, { event: 'clearAudio', streamId: STREAM_ID })
  t.match(await subscriber.waitForEvent('call.mark', 'CAplayl16'), { name: 'never-played', cleared: true })
  t.notOk(heard.items.some(({ message }) => message.event === 'checkpoint'), 'the checkpoint after the cleared audio never went out')

  // The call goes on after Plivo's clearedAudio: new audio plays, and its checkpoint comes back.
  await bot.audio(channel, 16000, speech.subarray(0, 3200))
  await bot.command(channel, { type: 'mark', name: 'after-clear' })
  await heard.waitFor(({ message }) => message.event === 'checkpoint' && message.name === 'after-clear', 'the next checkpoint')
  const marks = await subscriber.published.waitFor(({ channel, message }) => channel === `${gateway.prefix}calls` && message.includes('"name":"after-clear"'), 'call.mark after-clear')
  t.match(JSON.parse(marks.message.toString()), { type: 'call.mark', name: 'after-clear', cleared: false })
})

const AUTH_TOKEN = 'plivo-auth-token-0123456789abcdef'
/** What Plivo sends: base64(HMAC-SHA256(auth token, `<URL>.<nonce>`)), computed here as Plivo's SDKs document it. */
const v3 = (url: string, nonce: string, token = AUTH_TOKEN): string => createHmac('sha256', token).update(`${url}.${nonce}`).digest('base64')

t.test('with PLIVO_AUTH_TOKEN, the upgrade needs a valid X-Plivo-Signature-V3 and its nonce', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { PLIVO_AUTH_TOKEN: AUTH_TOKEN, AUTH_IP_ALLOWLIST: '' })
  const url = `${gateway.wsUrl}/v1/ingest/plivo`
  // The <Stream> URL is wss; here a TLS proxy would sit in front of the plain-ws test gateway.
  const signed = url.replace(/^ws:/, 'wss:')
  const headers = (signature: string, nonce = '05429567804466091622'): Record<string, string> => ({ 'x-plivo-signature-v3': signature, 'x-plivo-signature-v3-nonce': nonce })

  const client = await ProviderClient.connect(url, { headers: headers(v3(signed, '05429567804466091622')) })
  client.send(plivo.start('CAsigned'))
  client.send(plivo.stop())
  t.equal((await client.closed).code, 1000)
  t.match(await subscriber.waitForEvent('call.stop', 'CAsigned'), { vendor: 'plivo', tenant_verified: false })

  // Plivo's stream SDK checks the URL as https; an account with two tokens gets two signatures.
  const https = await ProviderClient.connect(url, { headers: headers(`${v3(signed, 'n2', 'another-token-0123456789')},${v3(url.replace(/^ws:/, 'https:'), 'n2')}`, 'n2') })
  https.send(plivo.start('CAhttps'))
  https.send(plivo.stop())
  t.equal((await https.closed).code, 1000)

  const wrong = await refusedUpgrade(url, { headers: headers(v3(signed, 'n3', 'another-token-0123456789'), 'n3') })
  t.equal(wrong.status, 401, 'a signature made with another token is refused')
  t.match(gateway.logs.items.findLast((line) => line.msg === 'authentication failed'), { auth_method: 'plivo-signature', reason: 'bad_signature' })
  const replayed = await refusedUpgrade(url, { headers: headers(v3(signed, '05429567804466091622'), 'another-nonce') })
  t.equal(replayed.status, 401, 'the signature covers the nonce')
  const otherUrl = await refusedUpgrade(url, { headers: headers(v3(`${signed}/other`, 'n4'), 'n4') })
  t.equal(otherUrl.status, 401, 'a signature over another URL is refused')

  const noNonce = await refusedUpgrade(url, { headers: { 'x-plivo-signature-v3': v3(signed, '') } })
  t.equal(noNonce.status, 401)
  t.match(gateway.logs.items.findLast((line) => line.msg === 'authentication failed'), { auth_method: 'plivo-signature', reason: 'missing_nonce' })
  const unsigned = await refusedUpgrade(url)
  t.equal(unsigned.status, 401, 'no signature at all is refused')
  t.match(gateway.logs.items.findLast((line) => line.msg === 'authentication failed'), { auth_method: 'ip', reason: 'credentials_required' })
  t.notOk(JSON.stringify(gateway.logs.items).includes(v3(signed, '05429567804466091622')), 'no signature is logged')

  // On the shared endpoint the signature admits the connection as Plivo, and only as Plivo.
  const shared = `${gateway.wsUrl}/v1/ingest`
  const viaShared = await ProviderClient.connect(shared, { headers: headers(v3(shared.replace(/^ws:/, 'wss:'), 'n5'), 'n5') })
  viaShared.send(plivo.start('CAsharedsigned'))
  viaShared.send(plivo.stop())
  t.equal((await viaShared.closed).code, 1000)
  t.match(await subscriber.waitForEvent('call.stop', 'CAsharedsigned'), { vendor: 'plivo' })
})

t.test('PLIVO_AUTH_ID holds a signed stream to its account; PLIVO_ACCOUNT_SIDS holds allowlisted ones to theirs', async (t) => {
  const { gateway: signedGateway, subscriber: signedSubscriber } = await startListenedGateway(t, redis.url, { PLIVO_AUTH_TOKEN: AUTH_TOKEN, PLIVO_AUTH_ID: 'MAXXXXXXXXXXXXXXXXXX' })
  const url = `${signedGateway.wsUrl}/v1/ingest/plivo`
  const signedHeaders = { headers: { 'x-plivo-signature-v3': v3(url.replace(/^ws:/, 'wss:'), 'n1'), 'x-plivo-signature-v3-nonce': 'n1' } }
  const own = await ProviderClient.connect(url, signedHeaders)
  own.send(plivo.start('CAownaccount'))
  own.send(plivo.stop())
  t.equal((await own.closed).code, 1000)
  t.match(await signedSubscriber.waitForEvent('call.stop', 'CAownaccount'), { tenant_id: 'MAXXXXXXXXXXXXXXXXXX', tenant_verified: true })
  const other = await ProviderClient.connect(url, signedHeaders)
  other.send({ ...plivo.start('CAotheraccount'), start: { ...plivo.start('CAotheraccount').start, accountId: 'MAOTHER' } })
  t.same(await other.closed, { code: 1008, reason: 'account MAOTHER is not one this credential may stream for' })

  const { gateway } = await startListenedGateway(t, redis.url, { PLIVO_ACCOUNT_SIDS: 'MAYYYYYYYYYYYYYYYYYY' })
  const unlisted = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/plivo`)
  unlisted.send(plivo.start('CAunlisted'))
  t.same(await unlisted.closed, { code: 1008, reason: 'account MAXXXXXXXXXXXXXXXXXX is not one this credential may stream for' })
})

t.test('the signature is checked against the URL as wss and https, with and without :443, its query sorted', async (t) => {
  const method = createPlivoSignatureMethod(AUTH_TOKEN)
  const request = (signature: string, url: string, nonce = 'n'): AuthRequest => ({ headers: { 'x-plivo-signature-v3': signature, 'x-plivo-signature-v3-nonce': nonce }, query: {}, ip: '203.0.113.9', url })
  for (const signed of ['wss://ingest.example.com/v1/ingest/plivo', 'https://ingest.example.com:443/v1/ingest/plivo']) {
    for (const arrived of ['ws://ingest.example.com/v1/ingest/plivo', 'wss://ingest.example.com:443/v1/ingest/plivo']) {
      t.match(await method.verify(request(v3(signed, 'n'), arrived)), { method: 'vendor', name: 'plivo-signature', ip: '203.0.113.9' }, `signed ${signed}, arrived as ${arrived}`)
    }
  }
  // Plivo's SDKs sign a query as its key=value pairs sorted (validateV3Signature, https://github.com/plivo/plivo-node).
  t.match(await method.verify(request(v3('wss://ingest.example.com/v1/ingest/plivo?a=1&b=2&b=3', 'n'), 'ws://ingest.example.com/v1/ingest/plivo?b=3&a=1&b=2')), { method: 'vendor' })
  t.match(await method.verify(request(v3('wss://ingest.example.com:8443/v1/ingest/plivo', 'n'), 'ws://ingest.example.com/v1/ingest/plivo')), { status: 401, reason: 'bad_signature' })
  t.match(await method.verify(request(v3('http://ingest.example.com/v1/ingest/plivo', 'n'), 'ws://ingest.example.com/v1/ingest/plivo')), { status: 401 }, 'Plivo streams over TLS')
})

t.test('configuration: SUPPORT_PLIVO defaults to true, and bad Plivo settings are refused', async (t) => {
  const load = (env: Record<string, string>): ReturnType<typeof loadConfig> => loadConfig({ env, dotenvFiles: [] })
  t.match(load({}), { SUPPORT_PLIVO: true, PLIVO_ACCOUNT_SIDS: '' })
  t.notOk('PLIVO_AUTH_TOKEN' in load({}))
  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ SUPPORT_PLIVO: 'sometimes' }, /SUPPORT_PLIVO/],
    [{ PLIVO_AUTH_TOKEN: 'short' }, /PLIVO_AUTH_TOKEN must NOT have fewer than 16 characters/],
    [{ PLIVO_AUTH_TOKEN: AUTH_TOKEN, PLIVO_AUTH_ID: 'MA:1' }, /PLIVO_AUTH_ID must match pattern/],
    [{ PLIVO_AUTH_ID: 'MAXXXXXXXXXXXXXXXXXX' }, /PLIVO_AUTH_ID names the account PLIVO_AUTH_TOKEN signs for: set PLIVO_AUTH_TOKEN too/],
    [{ PLIVO_ACCOUNT_SIDS: 'MA1,{MA2}' }, /PLIVO_ACCOUNT_SIDS has "\{MA2\}", which is not an account id/]
  ]
  for (const [env, message] of bad) t.throws(() => load(env), { name: 'ConfigError', message }, JSON.stringify(env))

  const server = runServer(t.testdir(), { PLIVO_AUTH_TOKEN: 'short' })
  t.equal(await server.exited, 78)
  t.match(server.stderr(), /rtaa-ingest: invalid configuration: .*PLIVO_AUTH_TOKEN/)
  t.notMatch(server.stderr(), /short/, 'the token is not echoed')
})

t.test('SUPPORT_PLIVO=false removes Plivo from its route and from detection', async (t) => {
  const { gateway } = await startListenedGateway(t, redis.url, { SUPPORT_PLIVO: 'false' })
  t.equal((await fetch(`${gateway.url}/v1/ingest/plivo`)).status, 404)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  client.send(plivo.start('CAnoplivo'))
  const closed = await client.closed
  t.equal(closed.code, 1007, 'Exotel and Twilio refuse the start as theirs')
  t.match(closed.reason, /^no enabled vendor accepts this message \(exotel: invalid start message at \/start\/call_sid/)
  const logged = await gateway.logs.waitFor((line) => line.msg === 'closing connection: bad input')
  t.same(logged.vendor_candidates, ['exotel', 'twilio', 'telnyx', 'vonage'], 'Plivo is no candidate')
  t.match(logged.reason, /; twilio: invalid start message at \/start\/accountSid/)
})

t.test('rtaa-sim --vendor plivo completes calls against a real gateway: μ-law, L16 at 16 kHz, both tracks, signed, voicebot', async (t) => {
  const dir = t.testdir()
  const server = await startToolsGateway(t, redis.url, { PLIVO_AUTH_TOKEN: AUTH_TOKEN })
  const subscriber = await Subscriber.start(t, redis.url, server.prefix)
  const base = ['--vendor', 'plivo', '--url', `${server.wsUrl}/v1/ingest`, '--duration', '0.4', '--plivo-auth-token', AUTH_TOKEN]

  const mulaw = await tool('rtaa-sim', [...base, '--dtmf', '7', '--call-prefix', 'plivomulaw'], dir).done
  t.equal(mulaw.code, 0, mulaw.stderr)
  t.match(JSON.parse(mulaw.stdout), { vendor: 'plivo', sample_rate: 8000, completed: 1, frames_sent: 20 })
  t.match(await subscriber.waitForEvent('call.stop', 'plivomulaw-1'), { vendor: 'plivo', reason: 'stopped', frames: 20, bytes: 20 * 320, gaps: 0 })
  t.match(subscriber.events('plivomulaw-1')[0], { tenant_id: 'ACsimulator', custom_parameters: { simulator: 'rtaa-sim' } })
  t.match(subscriber.events('plivomulaw-1')[1], { type: 'call.dtmf', digit: '7' })

  const wide = await tool('rtaa-sim', [...base, '--sample-rate', '16000', '--call-prefix', 'plivol16'], dir).done
  t.equal(wide.code, 0, wide.stderr)
  t.match(await subscriber.waitForEvent('call.stop', 'plivol16-1'), { frames: 20, bytes: 20 * 640 })
  t.match(subscriber.events('plivol16-1')[0], { sample_rate: 16000 })

  const both = await tool('rtaa-sim', [...base, '--tracks', 'both', '--call-prefix', 'plivoboth'], dir).done
  t.equal(both.code, 0, both.stderr)
  t.match(JSON.parse(both.stdout), { completed: 1, frames_sent: 40 })

  const unsigned = await tool('rtaa-sim', ['--vendor', 'plivo', '--url', `${server.wsUrl}/v1/ingest/plivo`, '--duration', '0.2'], dir).done
  t.equal(unsigned.code, 1)
  t.match(JSON.parse(unsigned.stdout), { results: [{ ok: false, error: /^upgrade refused: HTTP 401/ }] })

  const sim = tool('rtaa-sim', [...base, '--voicebot', '--duration', '1.5', '--call-prefix', 'plivobot', '--playback-dir', 'played'], dir).done
  const { playback_channel: channel } = await subscriber.waitForEvent('call.start', 'plivobot-1') as CallStartEvent
  const bot = await worker(t)
  await bot.audio(channel, 8000, Buffer.alloc(8000, 1))
  await bot.command(channel, { type: 'mark', name: 'said-it' })
  const run = await sim
  t.equal(run.code, 0, run.stderr)
  t.match(JSON.parse(run.stdout), { results: [{ ok: true, playback_bytes: 8000 }] })
  t.match(await subscriber.waitForEvent('call.mark', 'plivobot-1'), { name: 'said-it', cleared: false }, 'the checkpoint came back as playedStream through the simulator')
})
