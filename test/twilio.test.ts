import { createHmac } from 'node:crypto'
import t from 'tap'
import { decodeMulaw, encodeMulaw } from '../src/audio/mulaw.js'
import { createTwilioSignatureMethod } from '../src/vendors/twilio/twilio-signature.js'
import type { AuthRequest } from '../src/auth/auth-method.js'
import { TestRedis } from './helpers/redis-server.js'
import { startListenedGateway } from './helpers/gateway.js'
import { ProviderClient, refusedUpgrade } from './helpers/exotel.js'
import { G711_MULAW } from './helpers/g711.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

/** Twilio's messages from a real logged session (https://github.com/twilio/media-streams, node/connect-basic), with our ids. */
const twilio = {
  connected: () => ({ event: 'connected', protocol: 'Call', version: '1.0.0' }),
  start: (callSid: string) => ({
    event: 'start',
    sequenceNumber: '1',
    start: {
      accountSid: 'AC18fbd524d33614fba208030751dffdca',
      streamSid: `MZ${callSid}`,
      callSid,
      tracks: ['inbound'],
      mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
      customParameters: { aCutomParameter: 'aCustomValue that was set in TwiML' }
    },
    streamSid: `MZ${callSid}`
  }),
  media: (callSid: string, seq: number, mulaw: Buffer, track = 'inbound') => ({
    event: 'media',
    sequenceNumber: String(seq),
    media: { track, chunk: String(seq - 1), timestamp: String((seq - 2) * 20), payload: mulaw.toString('base64') },
    streamSid: `MZ${callSid}`
  }),
  dtmf: (callSid: string) => ({ event: 'dtmf', streamSid: `MZ${callSid}`, sequenceNumber: '9', dtmf: { track: 'inbound_track', digit: '7' } }),
  mark: (callSid: string) => ({ event: 'mark', sequenceNumber: '10', streamSid: `MZ${callSid}`, mark: { name: 'Repeat message 0' } }),
  stop: (callSid: string) => ({ event: 'stop', sequenceNumber: '11', streamSid: `MZ${callSid}`, stop: { accountSid: 'AC18fbd524d33614fba208030751dffdca', callSid } })
}

/** Every μ-law code word across a few frames, so the whole table crosses the wire. */
const mulawFrames = [0, 1, 2, 3].map((i) => Buffer.from(Array.from({ length: 160 }, (_, j) => (i * 160 + j) % 256)))
const referencePcm = (mulaw: Buffer): Buffer => {
  const pcm = Buffer.alloc(mulaw.length * 2)
  mulaw.forEach((byte, i) => pcm.writeInt16LE(G711_MULAW[byte], i * 2))
  return pcm
}

t.test('μ-law decodes to the G.711 reference values, and encoding round-trips them', async (t) => {
  const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
  const pcm = decodeMulaw(every)
  t.same(Array.from({ length: 256 }, (_, i) => pcm.readInt16LE(i * 2)), G711_MULAW)
  // 0x7f and 0xff both decode to 0, so 0x7f encodes back as 0xff; every other code word survives the round trip.
  t.same([...encodeMulaw(pcm)], [...every].map((byte) => (byte === 0x7f ? 0xff : byte)))
})

for (const path of ['/v1/ingest/twilio', '/v1/ingest']) {
  t.test(`a Twilio call through ${path} lands on Redis under the same contract`, async (t) => {
    const { gateway, subscriber } = await startListenedGateway(t, redis.url)
    const callSid = `CA${path.length}twilio`
    const client = await ProviderClient.connect(`${gateway.wsUrl}${path}`)
    client.send(twilio.connected())
    client.send(twilio.start(callSid))
    mulawFrames.forEach((frame, i) => client.send(twilio.media(callSid, i + 2, frame)))
    client.send(twilio.dtmf(callSid))
    client.send(twilio.mark(callSid))
    client.send(twilio.stop(callSid))
    t.equal((await client.closed).code, 1000)

    const stop = await subscriber.waitForEvent('call.stop', callSid)
    t.match(subscriber.events(callSid)[0], {
      type: 'call.start',
      vendor: 'twilio',
      interaction_id: callSid,
      tenant_id: 'AC18fbd524d33614fba208030751dffdca',
      stream_id: `MZ${callSid}`,
      sample_rate: 8000,
      encoding: 'pcm_s16le',
      from: null,
      to: null,
      custom_parameters: { aCutomParameter: 'aCustomValue that was set in TwiML' }
    })
    const frames = subscriber.frames(callSid)
    t.equal(frames.length, mulawFrames.length)
    t.ok(Buffer.concat(frames.map((f) => f.pcm)).equals(Buffer.concat(mulawFrames.map(referencePcm))), 'PCM equals the G.711 reference decoding')
    t.match(frames.map((f) => f.header), mulawFrames.map((_, i) => ({ seq: i + 1, vendor_seq: i + 2, timestamp_ms: i * 20, sample_rate: 8000 })))
    t.match(subscriber.events(callSid).slice(1, 3), [{ type: 'call.dtmf', digit: '7', duration_ms: null }, { type: 'call.mark', name: 'Repeat message 0' }])
    t.match(stop, { vendor: 'twilio', reason: 'stopped', frames: 4, bytes: 4 * 320 })
  })
}

t.test('with TWILIO_AUTH_TOKEN, the upgrade needs a valid X-Twilio-Signature', async (t) => {
  const authToken = 'twilio-auth-token-0123456789abcdef'
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { TWILIO_AUTH_TOKEN: authToken, AUTH_IP_ALLOWLIST: '' })
  const url = `${gateway.wsUrl}/v1/ingest/twilio`
  // What Twilio computes: base64(HMAC-SHA1(auth token, the URL configured in <Stream url>)). That URL is always
  // wss; here a TLS proxy would sit in front of the plain-ws test gateway.
  const sign = (signed: string): string => createHmac('sha1', authToken).update(signed.replace(/^ws:/, 'wss:')).digest('base64')

  const client = await ProviderClient.connect(url, { headers: { 'x-twilio-signature': sign(url) } })
  client.send(twilio.start('CAsigned'))
  client.send(twilio.stop('CAsigned'))
  t.equal((await client.closed).code, 1000)
  await subscriber.waitForEvent('call.stop', 'CAsigned')

  const wrong = await refusedUpgrade(url, { headers: { 'x-twilio-signature': sign(`${url}/other`) } })
  t.equal(wrong.status, 401, 'a signature over another URL is refused')
  t.match(gateway.logs.items.findLast((line) => line.msg === 'authentication failed'), { auth_method: 'twilio-signature', reason: 'bad_signature' })

  const forged = await refusedUpgrade(url, { headers: { 'x-twilio-signature': createHmac('sha1', 'another-token-0123456789').update(url.replace(/^ws:/, 'wss:')).digest('base64') } })
  t.equal(forged.status, 401, 'a signature made with another token is refused')

  const unsigned = await refusedUpgrade(url)
  t.equal(unsigned.status, 401, 'no signature at all is refused')
  t.match(gateway.logs.items.findLast((line) => line.msg === 'authentication failed'), { auth_method: 'ip', reason: 'credentials_required' })

  // On the shared endpoint the signature admits the connection as Twilio, and only as Twilio.
  const shared = `${gateway.wsUrl}/v1/ingest`
  const viaShared = await ProviderClient.connect(shared, { headers: { 'x-twilio-signature': sign(shared) } })
  viaShared.send({ event: 'connected' }) // could be Exotel's, but Exotel does not take this signature
  viaShared.send(twilio.start('CAsharedsigned'))
  viaShared.send(twilio.stop('CAsharedsigned'))
  t.equal((await viaShared.closed).code, 1000)
  t.match(await subscriber.waitForEvent('call.stop', 'CAsharedsigned'), { vendor: 'twilio' })
})

t.test('Twilio media in another encoding is refused with 1007', async (t) => {
  const { gateway } = await startListenedGateway(t, redis.url)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/twilio`)
  const start = twilio.start('CAlinear')
  start.start.mediaFormat = { encoding: 'audio/l16', sampleRate: 16000, channels: 1 } as never
  client.send(start)
  const closed = await client.closed
  t.equal(closed.code, 1007)
  t.match(closed.reason, /^invalid start message at \/start\/mediaFormat\/encoding/)
})

t.test('the signature is checked against the wss URL with and without :443, whatever scheme reached the gateway', async (t) => {
  const token = 'twilio-auth-token-0123456789abcdef'
  const method = createTwilioSignatureMethod(token)
  const sign = (url: string): string => createHmac('sha1', token).update(url).digest('base64')
  const request = (signature: string, url: string): AuthRequest => ({ headers: { 'x-twilio-signature': signature }, query: {}, ip: '203.0.113.9', url })
  for (const signed of ['wss://ingest.example.com/v1/ingest/twilio', 'wss://ingest.example.com:443/v1/ingest/twilio']) {
    for (const arrived of ['ws://ingest.example.com/v1/ingest/twilio', 'wss://ingest.example.com/v1/ingest/twilio', 'wss://ingest.example.com:443/v1/ingest/twilio']) {
      t.match(await method.verify(request(sign(signed), arrived)), { method: 'vendor', name: 'twilio-signature', ip: '203.0.113.9' }, `signed ${signed}, arrived as ${arrived}`)
    }
  }
  t.match(await method.verify(request(sign('wss://ingest.example.com:8443/v1/ingest/twilio'), 'ws://ingest.example.com/v1/ingest/twilio')), { status: 401, reason: 'bad_signature' })
  t.match(await method.verify(request(sign('wss://ingest.example.com/v1/ingest/twilio?x=1'), 'ws://ingest.example.com/v1/ingest/twilio')), { status: 401 })
})
