import { endianness } from 'node:os'
import { performance } from 'node:perf_hooks'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import type { CallStartEvent } from '../src/bus/call-events.js'
import { readWav } from '../src/audio/wav.js'
import { loadConfig } from '../src/config.js'
import { TestRedis } from './helpers/redis-server.js'
import { startListenedGateway, type Gateway } from './helpers/gateway.js'
import { ProviderClient, basicAuth, refusedUpgrade } from './helpers/exotel.js'
import { runServer } from './helpers/server-process.js'
import type { Subscriber } from './helpers/subscriber.js'
import { tool } from './helpers/tools.js'
import { Collected } from './helpers/waiter.js'
import { playbackWorker, type PlaybackWorker } from './helpers/playback-worker.js'
import { signJwt } from './helpers/jwt.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

/**
 * Vonage's messages as its WebSocket guide shows them (https://developer.vonage.com/en/voice/voice-api/concepts/websockets):
 * the first message carries the endpoint's content-type and, at its top level, the NCCO endpoint's `headers`
 * (the guide's are language and caller-id; call_id is the one the gateway requires, README "Vonage").
 */
const vonage = {
  connected: (callId: string, rate = 16000, headers: Record<string, unknown> = {}) => ({
    event: 'websocket:connected',
    'content-type': `audio/l16;rate=${rate}`,
    call_id: callId,
    language: 'en-GB',
    'caller-id': '447700900123',
    ...headers
  }),
  dtmf: () => ({ event: 'websocket:dtmf', digit: '5', duration: 260 }),
  // The echo of a notify action: its payload, once the audio sent before it has played.
  notify: (payload: Record<string, unknown>) => ({ event: 'websocket:notify', payload }),
  cleared: () => ({ event: 'websocket:cleared' })
}

/**
 * The reference for Vonage's binary frames: 16-bit samples as Vonage's own tutorial writes them to the socket,
 * `ws.send(Uint16Array.from(samples).buffer)` (https://developer.vonage.com/en/tutorials/play-audio-into-a-websocket/create-the-websocket/node),
 * that is in the host's byte order, which is little-endian on every platform Node supports.
 */
function vonageFrame (samples: number[]): Buffer {
  return Buffer.from(Int16Array.from(samples).buffer)
}

/** 20 ms of samples at `rate` that differ frame to frame, with extremes and a value whose bytes differ. */
function samplesOf (rate: number, seed: number): number[] {
  return Array.from({ length: rate / 50 }, (_, i) => (i === 0 ? -32768 : i === 1 ? 32767 : i === 2 ? 0x0102 : ((seed * 7919 + i * 131) % 65536) - 32768))
}

t.test('the reference frames are little-endian PCM, as the gateway publishes', async (t) => {
  t.equal(endianness(), 'LE', 'Vonage\'s tutorial sends typed-array buffers: little-endian here')
  t.same([...vonageFrame([0x0102, -2])], [0x02, 0x01, 0xfe, 0xff])
})

/** Binary frames the gateway sends a client, and its text messages, each with when it arrived. */
function listen (client: ProviderClient): { frames: Collected<{ at: number, pcm: Buffer }>, texts: Collected<{ at: number, message: Record<string, unknown>, framesBefore: number }> } {
  const frames = new Collected<{ at: number, pcm: Buffer }>()
  const texts = new Collected<{ at: number, message: Record<string, unknown>, framesBefore: number }>()
  client.ws.on('message', (data: Buffer, isBinary) => {
    if (isBinary) frames.push({ at: performance.now(), pcm: data })
    else texts.push({ at: performance.now(), message: JSON.parse(data.toString()) as Record<string, unknown>, framesBefore: frames.items.length })
  })
  return { frames, texts }
}

const worker = (t: Test): PlaybackWorker => playbackWorker(t, redis.url)

for (const path of ['/v1/ingest/vonage', '/v1/ingest']) {
  t.test(`a Vonage call through ${path} lands on Redis under the same contract`, async (t) => {
    const { gateway, subscriber } = await startListenedGateway(t, redis.url)
    const callId = `aaaaaaaa-bbbb-cccc-dddd-${path.length}123456789ab`
    const client = await ProviderClient.connect(`${gateway.wsUrl}${path}`)
    const sent = [1, 2, 3, 4, 5].map((seed) => vonageFrame(samplesOf(16000, seed)))
    client.send(vonage.connected(callId, 16000, { account_id: 'a1b2c3d4', from: '447700900000', to: '447700900001' }))
    sent.slice(0, 3).forEach((frame) => client.ws.send(frame, { binary: true }))
    client.send(vonage.dtmf())
    client.send(vonage.notify({ name: 'greeting' }))
    client.send(vonage.cleared())
    sent.slice(3).forEach((frame) => client.ws.send(frame, { binary: true }))
    // Vonage sends no stop: the call ends when the socket closes.
    await subscriber.published.waitFor(() => subscriber.frames(callId).length === sent.length, 'every frame')
    client.ws.close(1000)
    t.equal((await client.closed).code, 1000, 'the gateway answers the normal close in kind')

    const stop = await subscriber.waitForEvent('call.stop', callId)
    t.match(subscriber.events(callId)[0], {
      type: 'call.start',
      vendor: 'vonage',
      interaction_id: callId,
      tenant_id: 'a1b2c3d4',
      stream_id: null,
      sample_rate: 16000,
      encoding: 'pcm_s16le',
      from: '447700900000',
      to: '447700900001',
      custom_parameters: { call_id: callId, account_id: 'a1b2c3d4', language: 'en-GB', 'caller-id': '447700900123', from: '447700900000', to: '447700900001' }
    })
    t.notOk('event' in (subscriber.events(callId)[0] as CallStartEvent).custom_parameters, 'custom_parameters are the headers, not the message')
    const frames = subscriber.frames(callId)
    t.ok(Buffer.concat(frames.map((f) => f.pcm)).equals(Buffer.concat(sent)), 'PCM equals the samples Vonage sent, byte for byte')
    t.same(frames.map((f) => f.pcm.readInt16LE(0)), sent.map(() => -32768), 'read as s16le, the first sample is the one sent')
    t.match(frames.map((f) => f.header), sent.map((_, i) => ({ seq: i + 1, vendor_seq: null, timestamp_ms: i * 20, sample_rate: 16000 })))
    t.match(subscriber.events(callId).slice(1, -1), [{ type: 'call.dtmf', digit: '5', duration_ms: 260 }, { type: 'call.mark', name: 'greeting' }])
    t.same(subscriber.sequence(callId), ['start', 'audio', 'audio', 'audio', 'dtmf', 'mark', 'audio', 'audio', 'stop'])
    t.match(stop, { vendor: 'vonage', reason: 'disconnected', frames: 5, bytes: 5 * 640 })
  })
}

t.test('the content-type settles the rate: 8 kHz and 24 kHz calls', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  for (const [rate, contentType] of [[8000, 'audio/l16;rate=8000'], [24000, 'audio/L16; rate=24000']] as const) {
    const callId = `CON-rate-${rate}`
    const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/vonage`)
    const frame = vonageFrame(samplesOf(rate, rate))
    client.send({ ...vonage.connected(callId, rate), 'content-type': contentType })
    client.ws.send(frame, { binary: true })
    await subscriber.published.waitFor(() => subscriber.frames(callId).length === 1, `the ${rate} Hz frame`)
    client.close()
    t.match(await subscriber.waitForEvent('call.stop', callId), { reason: 'disconnected', frames: 1, bytes: rate / 25 })
    t.match(subscriber.events(callId)[0], { sample_rate: rate })
    t.match(subscriber.frames(callId)[0], { header: { sample_rate: rate } })
    t.ok(subscriber.frames(callId)[0].pcm.equals(frame), `${rate} Hz: ${frame.length} bytes, unchanged`)
  }
})

t.test('refused input: no call id, another codec, a broken message, half a sample, audio before websocket:connected', async (t) => {
  const { gateway } = await startListenedGateway(t, redis.url)
  const connected = vonage.connected('CON-bad') as Record<string, unknown>
  const { call_id: _callId, ...withoutCallId } = connected
  const cases: Array<[string, string, Array<Record<string, unknown> | Buffer>, number, RegExp]> = [
    ['no call_id in the headers', '/v1/ingest/vonage', [withoutCallId], 1007,
      /^websocket:connected has no call_id: set "call_id" \(the call's uuid\) in the headers of the NCCO websocket endpoint$/],
    ['the same on /v1/ingest', '/v1/ingest', [withoutCallId], 1007, /^websocket:connected has no call_id/],
    ['a codec Vonage does not stream', '/v1/ingest/vonage', [{ ...connected, 'content-type': 'audio/pcmu;rate=8000' }], 1003,
      /^unsupported content-type "audio\/pcmu;rate=8000": Vonage streams audio\/l16;rate=8000, 16000 or 24000$/],
    ['a rate Vonage does not stream', '/v1/ingest/vonage', [{ ...connected, 'content-type': 'audio/l16;rate=44100' }], 1003, /^unsupported content-type/],
    ['a call id that cannot be a channel name', '/v1/ingest/vonage', [{ ...connected, call_id: 'a b' }], 1007, /^invalid websocket:connected message at \/call_id/],
    ['a DTMF digit that is not one', '/v1/ingest/vonage', [connected, { event: 'websocket:dtmf', digit: '55' }], 1007, /^invalid websocket:dtmf message at \/digit/],
    ['a frame of half a sample', '/v1/ingest/vonage', [connected, Buffer.from([1, 2, 3])], 1007, /^payload holds 3 bytes, not a whole number of 16-bit samples$/],
    ['audio before websocket:connected', '/v1/ingest/vonage', [Buffer.alloc(640)], 1008, /^media before start$/],
    // On the shared route a binary frame before the vendor is known still settles nothing.
    ['audio first on /v1/ingest', '/v1/ingest', [Buffer.alloc(640)], 1008, /^cannot tell the vendor from a binary frame$/]
  ]
  for (const [name, path, messages, code, reason] of cases) {
    const client = await ProviderClient.connect(`${gateway.wsUrl}${path}`)
    for (const message of messages) {
      if (Buffer.isBuffer(message)) client.ws.send(message, { binary: true })
      else client.send(message)
    }
    const closed = await client.closed
    t.equal(closed.code, code, name)
    t.match(closed.reason, reason, name)
    t.match(await gateway.logs.waitFor((line) => line.msg === 'closing connection: bad input' && reason.test(String(line.reason)), name),
      { level: 40, close_code: code }, `${name}: logged`)
  }
})

/** A Vonage call that plays: the client records what the gateway sends it, and answers notify and clear as Vonage does. */
async function playingCall (t: Test, gateway: Gateway, subscriber: Subscriber, callId: string, rate: number, answer = true): Promise<{ client: ProviderClient, channel: string } & ReturnType<typeof listen>> {
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/vonage`)
  t.teardown(() => client.ws.terminate())
  const heard = listen(client)
  if (answer) {
    client.ws.on('message', (data: Buffer, isBinary) => {
      if (isBinary) return
      const message = JSON.parse(data.toString()) as Record<string, unknown>
      if (message.action === 'notify') client.send(vonage.notify(message.payload as Record<string, unknown>))
      if (message.action === 'clear') client.send(vonage.cleared())
    })
  }
  client.send(vonage.connected(callId, rate))
  const { playback_channel: channel } = await subscriber.waitForEvent('call.start', callId) as CallStartEvent
  return { client, channel, ...heard }
}

t.test('playback: every binary frame is exactly 20 ms at the call\'s rate, paced, then the mark as a notify', async (t) => {
  const LEAD_MS = 100
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { PLAYBACK_LEAD_MS: String(LEAD_MS) })
  const { frames, texts, channel } = await playingCall(t, gateway, subscriber, 'CON-play', 16000)
  const bot = worker(t)
  // 1.007 s at 16 kHz: 50 whole frames and 7 ms, which the last frame carries padded with silence.
  const input = Buffer.concat(Array.from({ length: 51 }, (_, i) => vonageFrame(samplesOf(16000, i)))).subarray(0, 16_112 * 2)
  const publishedAt = performance.now()
  await bot.audio(channel, 16000, input)
  await bot.command(channel, { type: 'mark', name: 'said-it' })

  t.match(await subscriber.waitForEvent('call.mark', 'CON-play'), { name: 'said-it', cleared: false }, 'the websocket:notify echo is call.mark')
  t.equal(frames.items.length, 51)
  for (const [i, { pcm }] of frames.items.entries()) t.equal(pcm.length, 640, `frame ${i + 1} is 640 bytes, 20 ms at 16 kHz`)
  const played = Buffer.concat(frames.items.map(({ pcm }) => pcm))
  t.ok(played.subarray(0, input.length).equals(input), 'the audio is the input, unchanged (same rate)')
  t.ok(played.subarray(input.length).equals(Buffer.alloc(played.length - input.length)), 'then silence up to the frame')
  const notify = texts.items.find(({ message }) => message.action === 'notify')
  t.same(notify?.message, { action: 'notify', payload: { name: 'said-it' } })
  t.equal(notify?.framesBefore, 51, 'the notify follows the audio queued before it')
  // Pacing: no more than PLAYBACK_LEAD_MS of audio ahead of real time, so the last frame cannot leave before
  // 51 × 20 ms minus the lead have passed since the audio was published. A bound below only: a slow machine
  // only makes it later. (Vonage buffers about 3,072 frames; its tutorial has long audio sent every 18–19 ms.)
  const spanMs = frames.items.at(-1)!.at - publishedAt
  t.ok(spanMs >= 51 * 20 - LEAD_MS - 5, `paced over real time: the last frame came ${spanMs.toFixed(0)} ms after the audio was published`)
})

t.test('playback at 8 kHz from 16 kHz audio: resampled, frames of 320 bytes', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const { frames, channel } = await playingCall(t, gateway, subscriber, 'CON-play8k', 8000)
  await worker(t).audio(channel, 16000, Buffer.alloc(16000, 1)) // 0.5 s at 16 kHz
  await worker(t).command(channel, { type: 'mark', name: 'end' })
  await subscriber.waitForEvent('call.mark', 'CON-play8k')
  t.ok(frames.items.length >= 25, `${frames.items.length} frames for 0.5 s`)
  t.ok(frames.items.every(({ pcm }) => pcm.length === 320), 'every frame is 320 bytes, 20 ms at 8 kHz')
})

t.test('clear sends {"action":"clear"}, Vonage answers websocket:cleared, and pending marks are reported cleared', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  // Vonage would answer the notify only once the audio before it had played; this client never answers one.
  const { client, frames, texts, channel } = await playingCall(t, gateway, subscriber, 'CON-clear', 16000, false)
  const bot = worker(t)
  await bot.audio(channel, 16000, Buffer.alloc(32_000 * 2, 1)) // 2 s
  await bot.command(channel, { type: 'mark', name: 'never-played' })
  await frames.waitFor(() => frames.items.length >= 2, 'two frames')
  await bot.command(channel, { type: 'clear' })

  const clear = await texts.waitFor(({ message }) => message.action === 'clear', 'clear')
  t.same(clear.message, { action: 'clear' })
  client.send(vonage.cleared())
  t.match(await subscriber.waitForEvent('call.mark', 'CON-clear'), { name: 'never-played', cleared: true })
  t.notOk(texts.items.some(({ message }) => message.action === 'notify'), 'the mark queued behind the cleared audio never went out')
  t.ok(frames.items.length < 100, `the 2 s queued were not all sent: ${frames.items.length} frames`)
  // websocket:cleared is an acknowledgement: the call goes on.
  client.ws.send(vonageFrame(samplesOf(16000, 9)), { binary: true })
  await subscriber.published.waitFor(() => subscriber.frames('CON-clear').length === 1, 'audio after the clear')
  client.close()
  t.match(await subscriber.waitForEvent('call.stop', 'CON-clear'), { reason: 'disconnected', frames: 1 })
})

t.test('Basic auth, as the NCCO endpoint\'s authorization {"type":"custom","value":"Basic …"} sends it', async (t) => {
  const token = 'vonage-basic-token-0123456789'
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, {
    AUTH_IP_ALLOWLIST: '', BASIC_AUTH_CREDENTIALS: `vonage:${token}`, BASIC_AUTH_ACCOUNTS: 'vonage=a1b2c3d4'
  })
  const url = `${gateway.wsUrl}/v1/ingest/vonage`
  const client = await ProviderClient.connect(url, { headers: { authorization: basicAuth('vonage', token) } })
  client.send(vonage.connected('CON-basic'))
  await subscriber.waitForEvent('call.start', 'CON-basic')
  client.close()
  t.match(await subscriber.waitForEvent('call.stop', 'CON-basic'), { tenant_id: 'a1b2c3d4', tenant_verified: true })

  const wrong = await refusedUpgrade(url, { headers: { authorization: basicAuth('vonage', `${token}x`) } })
  t.equal(wrong.status, 401)
  t.match(gateway.logs.items.findLast((line) => line.msg === 'authentication failed'), { auth_method: 'basic', reason: 'bad_credentials' })
  const none = await refusedUpgrade(url)
  t.equal(none.status, 403, 'no credential, from an address outside AUTH_IP_ALLOWLIST')
  t.match(gateway.logs.items.findLast((line) => line.msg === 'authentication failed'), { auth_method: 'ip', reason: 'ip_not_allowed' })

  // On /v1/ingest a Basic key admits Exotel and Vonage; websocket:connected tells them apart.
  const shared = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`, { headers: { authorization: basicAuth('vonage', token) } })
  shared.send(vonage.connected('CON-basic-shared'))
  await subscriber.waitForEvent('call.start', 'CON-basic-shared')
  shared.close()
  t.match(await subscriber.waitForEvent('call.stop', 'CON-basic-shared'), { vendor: 'vonage', tenant_id: 'a1b2c3d4' })
})

t.test('VONAGE_ACCOUNT_SIDS: a stream admitted by the IP allowlist must name a listed account', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { VONAGE_ACCOUNT_SIDS: 'a1b2c3d4,e5f6a7b8' })
  const listed = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/vonage`)
  listed.send(vonage.connected('CON-listed', 16000, { account_id: 'e5f6a7b8' }))
  await subscriber.waitForEvent('call.start', 'CON-listed')
  listed.close()
  t.match(await subscriber.waitForEvent('call.stop', 'CON-listed'), { tenant_id: 'e5f6a7b8', tenant_verified: true })
  for (const [name, headers, reason] of [
    ['an account not listed', { account_id: 'ffffffff' }, /^account ffffffff is not one this credential may stream for$/],
    ['no account', {}, /^the start names no account$/]
  ] as const) {
    const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/vonage`)
    client.send(vonage.connected('CON-unlisted', 16000, headers))
    const closed = await client.closed
    t.equal(closed.code, 1008, name)
    t.match(closed.reason, reason, name)
  }
})

t.test('with VONAGE_SIGNATURE_SECRET, the upgrade needs the token Vonage signs ("authorization": {"type": "vonage"})', async (t) => {
  const secret = 'vonage-signature-secret-0123456789'
  const jwtSecret = 'gateway-jwt-secret-of-32-bytes-at-least'
  // The gateway's own JWT is on too: on Vonage's route, a Bearer token is still Vonage's.
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, {
    VONAGE_SIGNATURE_SECRET: secret, VONAGE_API_KEY: 'a1b2c3d4', AUTH_IP_ALLOWLIST: '', SUPPORT_NATIVE: 'true', JWT_SECRET: jwtSecret
  })
  const url = `${gateway.wsUrl}/v1/ingest/vonage`
  const now = Math.floor(Date.now() / 1000)
  // The claims of Vonage's signed webhooks (https://developer.vonage.com/en/getting-started/concepts/webhooks#decoding-signed-webhooks).
  const claims = { iat: now, jti: 'c5ba8f24-1a14-4c10-bfdf-3fbe8ce511b5', iss: 'Vonage', api_key: 'a1b2c3d4', application_id: 'aaaaaaaa-bbbb-cccc-dddd-0123456789ab' }
  const bearer = (token: string): { headers: Record<string, string> } => ({ headers: { authorization: `Bearer ${token}` } })

  const client = await ProviderClient.connect(url, bearer(signJwt(claims, secret)))
  client.send(vonage.connected('CON-signed'))
  await subscriber.waitForEvent('call.start', 'CON-signed')
  client.close()
  t.match(await subscriber.waitForEvent('call.stop', 'CON-signed'), { vendor: 'vonage', tenant_id: 'a1b2c3d4', tenant_verified: true }, 'the signed account is the tenant')

  const refusals: Array<[string, { headers?: Record<string, string> }, number, string, string]> = [
    ['signed with another secret', bearer(signJwt(claims, 'another-secret-0123456789')), 401, 'vonage-signature', 'bad_signature'],
    ['signed for another account', bearer(signJwt({ ...claims, api_key: 'ffffffff' }, secret)), 401, 'vonage-signature', 'wrong_account'],
    ['issued ten minutes ago', bearer(signJwt({ ...claims, iat: now - 600 }, secret)), 401, 'vonage-signature', 'token_lifetime'],
    ['issued ten minutes ahead', bearer(signJwt({ ...claims, iat: now + 600 }, secret)), 401, 'vonage-signature', 'token_inactive'],
    ['past its exp', bearer(signJwt({ ...claims, exp: now - 300 }, secret)), 401, 'vonage-signature', 'token_expired'],
    ['signed with alg none', bearer(signJwt(claims, '', 'none')), 401, 'vonage-signature', 'bad_signature'],
    ['a token with its signature cut', bearer(signJwt(claims, secret).slice(0, -2)), 401, 'vonage-signature', 'bad_signature'],
    ['no credential', {}, 401, 'ip', 'credentials_required'],
    ['Basic instead', { headers: { authorization: basicAuth('vonage', 'whatever') } }, 401, 'basic', 'method_not_accepted']
  ]
  for (const [name, options, status, method, reason] of refusals) {
    const refused = await refusedUpgrade(url, options)
    t.equal(refused.status, status, name)
    t.match(gateway.logs.items.findLast((line) => line.msg === 'authentication failed'), { auth_method: method, reason }, name)
    t.notMatch(JSON.stringify(gateway.logs.items.at(-1)), secret, `${name}: the log holds no secret`)
  }
  const claimed = await ProviderClient.connect(url, bearer(signJwt(claims, secret)))
  claimed.send(vonage.connected('CON-claims-other', 16000, { account_id: 'ffffffff' }))
  t.match(await claimed.closed, { code: 1008, reason: 'account ffffffff is not one this credential may stream for' }, 'the headers cannot name another tenant')
})

t.test('config: on by default, SUPPORT_VONAGE=false removes the route and the detection, bad settings are refused', async (t) => {
  t.match(loadConfig({ env: {}, dotenvFiles: [] }), { SUPPORT_VONAGE: true, VONAGE_ACCOUNT_SIDS: '' })
  for (const [env, message] of [
    [{ VONAGE_ACCOUNT_SIDS: 'a1b2c3d4,{x}' }, /VONAGE_ACCOUNT_SIDS has "\{x\}", which is not an account id/],
    [{ VONAGE_SIGNATURE_SECRET: 'vonage-signature-secret-0123456789' }, /VONAGE_SIGNATURE_SECRET and VONAGE_API_KEY must be set together/],
    [{ VONAGE_API_KEY: 'a1b2c3d4' }, /VONAGE_SIGNATURE_SECRET and VONAGE_API_KEY must be set together/],
    [{ VONAGE_SIGNATURE_SECRET: 'short', VONAGE_API_KEY: 'a1b2c3d4' }, /VONAGE_SIGNATURE_SECRET must NOT have fewer than 16 characters/],
    [{ SUPPORT_VONAGE: 'perhaps' }, /SUPPORT_VONAGE/]
  ] as const) {
    t.throws(() => loadConfig({ env, dotenvFiles: [] }), { name: 'ConfigError', message }, JSON.stringify(env))
  }
  const server = runServer(t.testdir(), { VONAGE_ACCOUNT_SIDS: '{x}' })
  t.equal(await server.exited, 78, 'the server stops with status 78')
  t.match(server.stderr(), /rtaa-ingest: invalid configuration: .*VONAGE_ACCOUNT_SIDS/)

  const { gateway } = await startListenedGateway(t, redis.url, { SUPPORT_VONAGE: 'false' })
  t.equal((await fetch(`${gateway.url}/v1/ingest/vonage`)).status, 404)
  // Without Vonage, websocket:connected fits no vendor's ids, and the first frame of audio cannot be told either.
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  client.send(vonage.connected('CON-off'))
  client.ws.send(Buffer.alloc(640), { binary: true })
  t.match(await client.closed, { code: 1008, reason: 'cannot tell the vendor from a binary frame' })
})

t.test('rtaa-sim --vendor vonage completes a call, and as a voicebot answers notify and saves the 20 ms frames it hears', async (t) => {
  const dir = t.testdir()
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const plain = await tool('rtaa-sim', ['--url', `${gateway.wsUrl}/v1/ingest`, '--vendor', 'vonage', '--duration', '0.3', '--dtmf', '5', '--call-prefix', 'vsim'], dir).done
  t.equal(plain.code, 0, plain.stderr)
  t.match(JSON.parse(plain.stdout), { vendor: 'vonage', completed: 1 })
  t.match(await subscriber.waitForEvent('call.stop', 'vsim-1'), { vendor: 'vonage', reason: 'disconnected', frames: 15, bytes: 15 * 640 })
  t.match(subscriber.events('vsim-1'), [{ type: 'call.start', sample_rate: 16000, tenant_id: 'ACsimulator' }, { type: 'call.dtmf', digit: '5', duration_ms: 260 }, { type: 'call.stop' }])

  const bot = tool('rtaa-sim', ['--url', `${gateway.wsUrl}/v1/ingest/vonage`, '--vendor', 'vonage', '--sample-rate', '8000', '--voicebot', '--duration', '1', '--call-prefix', 'vbot', '--playback-dir', 'played'], dir).done
  const { playback_channel: channel } = await subscriber.waitForEvent('call.start', 'vbot-1') as CallStartEvent
  const speech = Buffer.concat(Array.from({ length: 13 }, (_, i) => vonageFrame(samplesOf(8000, i)))).subarray(0, 4000) // 0.25 s
  await worker(t).audio(channel, 8000, speech)
  await worker(t).command(channel, { type: 'mark', name: 'said-it' })
  const run = await bot
  t.equal(run.code, 0, run.stderr)
  t.match(JSON.parse(run.stdout), { vendor: 'vonage', completed: 1, results: [{ playback_bytes: 13 * 320 }] })
  t.match(await subscriber.waitForEvent('call.mark', 'vbot-1'), { name: 'said-it', cleared: false }, 'the notify came back through the simulator')
  const saved = readWav(readFileSync(join(dir, 'played', 'vbot-1.wav')))
  t.equal(saved.sampleRate, 8000)
  t.ok(saved.pcm.subarray(0, speech.length).equals(speech), 'the simulator saved the audio played, as sent')
})
