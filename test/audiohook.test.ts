import { randomBytes, randomUUID } from 'node:crypto'
import t, { type Test } from 'tap'
import type { CallStartEvent } from '../src/bus/call-events.js'
import { loadConfig } from '../src/config.js'
import { signAudioHookUpgrade, verifySignature } from '../src/vendors/audiohook/audiohook-signature.js'
import { TestRedis } from './helpers/redis-server.js'
import { audioHookOpen } from './helpers/audiohook.js'
import { startListenedGateway, type Gateway } from './helpers/gateway.js'
import { ProviderClient, refusedUpgrade } from './helpers/exotel.js'
import { G711_MULAW } from './helpers/g711.js'
import { playbackWorker } from './helpers/playback-worker.js'
import { runServer } from './helpers/server-process.js'
import { Subscriber } from './helpers/subscriber.js'
import { startToolsGateway, tool } from './helpers/tools.js'
import { Collected } from './helpers/waiter.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

/*
 * Literals from Genesys's AudioHook protocol specification (https://developer.genesys.cloud/devapps/audiohook/):
 * the open transaction of its session walkthrough (https://developer.genesys.cloud/devapps/audiohook/session-walkthrough#open-transaction),
 * the messages of its protocol reference (https://developer.genesys.cloud/devapps/audiohook/protocol-reference), and
 * the signed example request of its security page (https://developer.genesys.cloud/devapps/audiohook/security#client-authentication).
 */
const ORG = 'd7934305-0972-4844-938e-9060eef73d05'
const CONVERSATION = '090eaa2f-72fa-480a-83e0-8667ff89c0ec'
const API_KEY = 'SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh'
const CLIENT_SECRET = 'TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU='
/** A second organization, whose key has no client secret: X-API-KEY alone admits it. */
const OTHER_ORG = '11111111-2222-4333-8444-555555555555'
const OTHER_KEY = 'another-api-key-without-secret'
const CREDENTIALS = `${ORG}:${API_KEY}:${CLIENT_SECRET},${OTHER_ORG}:${OTHER_KEY}`

const STEREO = { type: 'audio', format: 'PCMU', channels: ['external', 'internal'], rate: 8000 }

/** The spec's open, word for word, with the session id and conversation id a test gives it. */
/** What Genesys offers: stereo PCMU, or either leg alone. */
const OFFERED = [STEREO, { ...STEREO, channels: ['external'] }, { ...STEREO, channels: ['internal'] }]

function open (id: string, conversationId = CONVERSATION, media: unknown[] = OFFERED): Record<string, unknown> {
  return audioHookOpen(id, ORG, conversationId, media)
}

/** A client message of the protocol reference: version, type, id, seq, serverseq, position, parameters. */
function clientMessage (id: string, type: string, seq: number, serverseq: number, parameters: Record<string, unknown> = {}, position = 'PT0S'): Record<string, unknown> {
  return { version: '2', type, seq, serverseq, id, position, parameters }
}

/** Genesys's upgrade headers, signed now with the spec's key and secret (a fresh nonce unless given). */
function signed (url: string, session: string, overrides: { organizationId?: string, apiKey?: string, secret?: Buffer | null, created?: number, nonce?: string } = {}): Record<string, string> {
  return signAudioHookUpgrade(url, {
    organizationId: overrides.organizationId ?? ORG,
    apiKey: overrides.apiKey ?? API_KEY,
    secret: overrides.secret === undefined ? Buffer.from(CLIENT_SECRET, 'base64') : overrides.secret
  }, { sessionId: session, correlationId: randomUUID(), nonce: overrides.nonce ?? randomBytes(18).toString('base64url'), created: overrides.created ?? Math.floor(Date.now() / 1000) })
}

/** A connected AudioHook client: its text messages from the server, parsed, and its binary ones (there must be none). */
async function connect (t: Test, gateway: Gateway, path = '/v1/ingest/audiohook', session = randomUUID()): Promise<{ client: ProviderClient, session: string, texts: Collected<Record<string, unknown>>, binary: Buffer[] }> {
  const url = `${gateway.wsUrl}${path}`
  const client = await ProviderClient.connect(url, { headers: signed(url, session) })
  t.teardown(() => client.ws.terminate())
  const texts = new Collected<Record<string, unknown>>()
  const binary: Buffer[] = []
  client.ws.on('message', (data: Buffer, isBinary) => {
    if (isBinary) binary.push(data)
    else texts.push(JSON.parse(data.toString()) as Record<string, unknown>)
  })
  return { client, session, texts, binary }
}

const nextOf = (texts: Collected<Record<string, unknown>>, type: string, after = 0): Promise<Record<string, unknown>> =>
  texts.waitFor((message) => message.type === type && (message.seq as number) > after, `the server's ${type}`)

/** 20 ms of μ-law per channel (160 code words), different per frame and channel, every code word over a few frames. */
const codes = (channel: 0 | 1, frame: number): Buffer => Buffer.from(Array.from({ length: 160 }, (_, i) => (i * (channel === 0 ? 1 : 255) + frame * 160 + channel * 77) % 256))

function interleave (left: Buffer, right: Buffer): Buffer {
  const frame = Buffer.alloc(left.length * 2)
  for (let i = 0; i < left.length; i++) {
    frame[i * 2] = left[i]
    frame[i * 2 + 1] = right[i]
  }
  return frame
}

/** PCM s16le of μ-law code words, from the G.711 reference table, not the gateway's decoder. */
function expectedPcm (mulaw: Buffer): Buffer {
  const pcm = Buffer.alloc(mulaw.length * 2)
  mulaw.forEach((code, i) => pcm.writeInt16LE(G711_MULAW[code], i * 2))
  return pcm
}

t.test('the specification\'s signed example request verifies, and a changed header or secret does not', async (t) => {
  const headers = {
    host: 'audiohook.example.com',
    'audiohook-organization-id': ORG,
    'audiohook-correlation-id': 'e160e428-53e2-487c-977d-96989bf5c99d',
    'audiohook-session-id': '30b0e395-84d3-4570-ac13-9a62d8f514c0',
    'x-api-key': API_KEY,
    signature: 'sig1=:NZBwyBHRRyRoeLqy1IzOa9VYBuI8TgMFt2GRDkDuJh4=:',
    'signature-input': 'sig1=("@request-target" "@authority" "audiohook-organization-id" "audiohook-session-id" "audiohook-correlation-id" "x-api-key");keyid="SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh";nonce="VGhpc0lzQVVuaXF1ZU5vbmNl";alg="hmac-sha256";created=1641013200;expires=3282026430'
  }
  const request = (changed: Record<string, string> = {}): Parameters<typeof verifySignature>[0] =>
    ({ headers: { ...headers, ...changed }, query: {}, ip: '203.0.113.7', url: 'wss://audiohook.example.com/api/v1/voicebiometrics/ws' })
  const secret = Buffer.from(CLIENT_SECRET, 'base64')
  const created = 1641013200
  t.match(verifySignature(request(), API_KEY, secret, created + 1), { nonce: 'VGhpc0lzQVVuaXF1ZU5vbmNl' }, 'the spec\'s signature, at the time it was made')
  t.match(verifySignature(request({ 'audiohook-session-id': randomUUID() }), API_KEY, secret, created + 1), { status: 401, reason: 'bad_signature' })
  t.match(verifySignature(request(), API_KEY, Buffer.from('another secret, 32 bytes long...'), created + 1), { status: 401, reason: 'bad_signature' })
  t.match(verifySignature(request(), API_KEY, secret, created + 3600), { status: 401, reason: 'signature_stale' }, 'an hour later it is stale')
  t.match(verifySignature(request(), 'another-key', secret, created + 1), { status: 401, reason: 'keyid_mismatch' })
  const uncovered = headers['signature-input'].replace(' "x-api-key"', '')
  t.match(verifySignature(request({ 'signature-input': uncovered }), API_KEY, secret, created + 1), { status: 401, reason: 'components_missing' })
})

for (const path of ['/v1/ingest/audiohook', '/v1/ingest']) {
  t.test(`an AudioHook session through ${path}: opened, stereo PCMU as two tracks byte for byte, ping, pause, discarded, close`, async (t) => {
    const { gateway, subscriber } = await startListenedGateway(t, redis.url, { AUDIOHOOK_CREDENTIALS: CREDENTIALS })
    const { client, session, texts, binary } = await connect(t, gateway, path)
    client.send(open(session))
    t.same(await nextOf(texts, 'opened'), {
      version: '2',
      type: 'opened',
      seq: 1,
      clientseq: 1,
      id: session,
      parameters: { media: [STEREO], startPaused: false }
    }, 'opened names the stereo PCMU offer, first in the open\'s list')

    const frames = [0, 1, 2, 3, 4, 5, 6].map((i) => ({ external: codes(0, i), internal: codes(1, i) }))
    const send = (i: number): void => client.ws.send(interleave(frames[i].external, frames[i].internal), { binary: true })
    let seq = 1
    ;[0, 1, 2].forEach(send)
    client.send(clientMessage(session, 'ping', ++seq, 1, { rtt: 'PT0.05S' }))
    t.same(await nextOf(texts, 'pong'), { version: '2', type: 'pong', seq: 2, clientseq: 2, id: session, parameters: {} })
    // The client pauses (https://developer.genesys.cloud/devapps/audiohook/protocol-reference#paused): audio sent meanwhile is withheld.
    client.send(clientMessage(session, 'paused', ++seq, 2, {}, 'PT0.06S'))
    await subscriber.waitForEvent('call.paused', CONVERSATION)
    ;[3, 4].forEach(send)
    client.send(clientMessage(session, 'resumed', ++seq, 2, { start: 'PT0.1S', discarded: 'PT0S' }, 'PT0.1S'))
    await subscriber.waitForEvent('call.resumed', CONVERSATION)
    client.send(clientMessage(session, 'update', ++seq, 2, { language: 'fr-FR' }))
    // Half a second the client could not send: the next frame's timestamp jumps by it.
    client.send(clientMessage(session, 'discarded', ++seq, 2, { start: 'PT0.1S', discarded: 'PT0.5S' }, 'PT0.1S'))
    client.send(clientMessage(session, 'error', ++seq, 2, { code: 429, message: 'Rate limit exceeded', retryAfter: 'PT1S' }))
    ;[5, 6].forEach(send)
    client.send(clientMessage(session, 'close', ++seq, 2, { reason: 'end' }, 'PT0.64S'))
    t.same(await nextOf(texts, 'closed'), { version: '2', type: 'closed', seq: 3, clientseq: seq, id: session, parameters: {} })
    t.match(await client.closed, { code: 1000 })

    const stop = await subscriber.waitForEvent('call.stop', CONVERSATION)
    t.match(subscriber.events(CONVERSATION)[0], {
      type: 'call.start',
      vendor: 'audiohook',
      interaction_id: CONVERSATION,
      tenant_id: ORG,
      tenant_verified: true,
      stream_id: session,
      sample_rate: 8000,
      tracks: ['inbound', 'outbound'],
      from: '+1-555-555-1234',
      to: '+1-800-555-6789',
      custom_parameters: { participant: { id: '883efee8-3d6c-4537-b500-6d7ca4b92fa0', ani: '+1-555-555-1234', aniName: 'John Doe', dnis: '+1-800-555-6789' }, language: 'en-US' }
    })
    const published = [0, 1, 2, 5, 6]
    for (const [track, channel] of [['inbound', 'external'], ['outbound', 'internal']] as const) {
      const got = subscriber.frames(CONVERSATION, track)
      t.equal(got.length, published.length, `${track}: every frame but the paused ones`)
      t.ok(Buffer.concat(got.map(({ pcm }) => pcm)).equals(Buffer.concat(published.map((i) => expectedPcm(frames[i][channel])))),
        `${track} (${channel}) is the ${channel} channel's μ-law, decoded by the G.711 table, byte for byte`)
      t.same(got.map(({ header }) => header.timestamp_ms), [0, 20, 40, 600, 620], `${track}: the pause keeps its place, the discarded half second too`)
      t.same(got.map(({ header }) => header.track), published.map(() => track))
    }
    t.match(stop, { vendor: 'audiohook', reason: 'end', frames: 10, frames_withheld: 4, bytes_withheld: 4 * 320, tracks: { inbound: { frames: 5, frames_withheld: 2 }, outbound: { frames: 5, frames_withheld: 2 } } })
    t.match(subscriber.events(CONVERSATION).find(({ type }) => type === 'call.resumed'), { source: 'vendor', frames_withheld: 4 })
    const sequence = subscriber.sequence(CONVERSATION)
    t.same(sequence.slice(sequence.indexOf('paused'), sequence.indexOf('resumed') + 1), ['paused', 'resumed'], 'no frame between pause and resume')
    t.match(await gateway.logs.waitFor((line) => line.msg === 'the vendor reported an error; the call goes on'), { level: 40, vendor_error: { code: '429', detail: 'Rate limit exceeded' } })
    t.equal(binary.length, 0, 'AudioHook plays nothing')
    t.notOk(JSON.stringify(gateway.logs.items).includes(CLIENT_SECRET), 'no secret is logged')
    t.notOk(JSON.stringify(gateway.logs.items).includes(API_KEY), 'no key is logged')
  })
}

t.test('mono L16 of the agent alone is one outbound track, little-endian, and a key without secret admits unsigned', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { AUDIOHOOK_CREDENTIALS: CREDENTIALS })
  const url = `${gateway.wsUrl}/v1/ingest/audiohook`
  const session = randomUUID()
  const client = await ProviderClient.connect(url, { headers: signed(url, session, { organizationId: OTHER_ORG, apiKey: OTHER_KEY, secret: null }) })
  const l16 = { type: 'audio', format: 'L16', channels: ['internal'], rate: 8000 }
  client.send(audioHookOpen(session, OTHER_ORG, 'CONV-l16', [{ ...l16, rate: 16000 }, l16]))
  await client.received.waitFor((text) => text.includes('"opened"'))
  t.match(JSON.parse(client.received.items[0]), { parameters: { media: [l16] } }, 'the 16 kHz offer is passed over')
  const samples = [-32768, 32767, 0x0102, -2]
  const frame = Buffer.alloc(8)
  samples.forEach((sample, i) => frame.writeInt16LE(sample, i * 2))
  client.ws.send(frame, { binary: true })
  client.send(clientMessage(session, 'close', 2, 1, { reason: 'end' }))
  await client.closed
  t.match(await subscriber.waitForEvent('call.stop', 'CONV-l16'), { tenant_id: OTHER_ORG, frames: 1, bytes: 8 })
  t.match(subscriber.events('CONV-l16')[0], { tracks: ['outbound'], tenant_verified: true })
  // A call's only track keeps the call's own names, whichever leg it is (docs/redis-contract.md, "Tracks").
  t.ok(subscriber.frames('CONV-l16')[0].pcm.equals(frame), 'L16 as sent: little-endian, s16le already')
})

t.test('the numbering is enforced: a seq gap, a serverseq ahead, get a disconnect for the error and a 1008', async (t) => {
  const { gateway } = await startListenedGateway(t, redis.url, { AUDIOHOOK_CREDENTIALS: CREDENTIALS })
  const cases: Array<[string, (session: string) => Record<string, unknown>, RegExp]> = [
    ['a seq gap', (session) => clientMessage(session, 'ping', 3, 1), /^seq 3 after 1: AudioHook numbers the client's messages 1, 2, 3…$/],
    ['a serverseq the server never sent', (session) => clientMessage(session, 'ping', 2, 5), /^serverseq 5: the server's last message was 1/],
    ['another session id', () => clientMessage(randomUUID(), 'ping', 2, 1), /^id is not the session's/]
  ]
  for (const [name, message, reason] of cases) {
    const conversation = `CONV-seq-${cases.findIndex(([n]) => n === name)}`
    const { client, session, texts } = await connect(t, gateway)
    client.send(open(session, conversation))
    await nextOf(texts, 'opened')
    client.send(message(session))
    t.match(await nextOf(texts, 'disconnect'), { type: 'disconnect', seq: 2, clientseq: 1, id: session, parameters: { reason: 'error', info: reason } }, name)
    const closed = await client.closed
    t.equal(closed.code, 1008, name)
    t.match(closed.reason, reason, name)
    t.match(await gateway.logs.waitFor((line) => line.msg === 'closing connection: bad input' && reason.test(String(line.reason))), { level: 40, close_code: 1008, vendor: 'audiohook' }, `${name}: logged`)
  }
})

t.test('refused input: half a stereo sample, no media the gateway takes, an open for another organization', async (t) => {
  const { gateway } = await startListenedGateway(t, redis.url, { AUDIOHOOK_CREDENTIALS: CREDENTIALS })
  const cases: Array<[string, (session: string) => Array<Record<string, unknown> | Buffer>, number, RegExp]> = [
    ['a frame of 3 bytes in stereo PCMU', (session) => [open(session, 'CONV-bad-1'), Buffer.from([1, 2, 3])], 1007,
      /^audio frame of 3 bytes is not a whole number of stereo PCMU samples \(2 bytes each\)$/],
    ['opus only', (session) => [open(session, 'CONV-bad-2', [{ type: 'audio', format: 'opus', channels: ['external'], rate: 48000 }])], 1003, /^no offered media the gateway takes/],
    ['another organization', (session) => [audioHookOpen(session, OTHER_ORG, 'CONV-bad-3', OFFERED)], 1008,
      /is not one this credential may stream for/],
    ['a conversation id that cannot be a channel name', (session) => [open(session, 'a b')], 1007, /^invalid open message at \/parameters\/conversationId/]
  ]
  for (const [name, messages, code, reason] of cases) {
    const { client, session } = await connect(t, gateway)
    for (const message of messages(session)) {
      if (Buffer.isBuffer(message)) client.ws.send(message, { binary: true })
      else client.send(message)
    }
    const closed = await client.closed
    t.equal(closed.code, code, name)
    t.match(closed.reason, reason, name)
  }
})

t.test('refused before the upgrade: bad key, bad or stale signature, reused nonce, unsigned with a secret, another organization', async (t) => {
  const { gateway } = await startListenedGateway(t, redis.url, { AUDIOHOOK_CREDENTIALS: CREDENTIALS })
  const url = `${gateway.wsUrl}/v1/ingest/audiohook`
  const session = randomUUID()
  const nonce = randomBytes(18).toString('base64url')
  const first = await ProviderClient.connect(url, { headers: signed(url, session, { nonce }) })
  first.ws.terminate()
  const cases: Array<[string, Record<string, string>, number, string]> = [
    ['an unknown API key', signed(url, session, { apiKey: 'not-a-key-we-know' }), 401, 'bad_api_key'],
    ['a signature with another secret', signed(url, session, { secret: Buffer.from('another secret, 32 bytes long...') }), 401, 'bad_signature'],
    ['a signature two minutes old', signed(url, session, { created: Math.floor(Date.now() / 1000) - 120 }), 401, 'signature_stale'],
    ['a reused nonce', signed(url, session, { nonce }), 401, 'nonce_reused'],
    ['no signature for a key with a secret', signed(url, session, { secret: null }), 401, 'unsigned'],
    ['an organization that is not the key\'s', signed(url, session, { organizationId: OTHER_ORG }), 403, 'wrong_organization'],
    ['a signature for another path', signed(`${gateway.wsUrl}/v1/ingest/other`, session), 401, 'bad_signature']
  ]
  for (const [name, headers, status, reason] of cases) {
    const refused = await refusedUpgrade(url, { headers })
    t.equal(refused.status, status, name)
    t.match(await gateway.logs.waitFor((line) => line.msg === 'authentication failed' && line.reason === reason, name),
      { level: 40, auth_method: 'audiohook-key', reason, status }, `${name}: logged`)
  }
  // On the shared route the same signature is refused: it names /v1/ingest/audiohook.
  t.equal((await refusedUpgrade(`${gateway.wsUrl}/v1/ingest`, { headers: signed(url, session) })).status, 401)
  t.notOk(JSON.stringify(gateway.logs.items).includes(CLIENT_SECRET), 'no secret is logged')
  t.notOk(JSON.stringify(gateway.logs.items).includes(API_KEY), 'no key is logged')
})

t.test('a worker\'s event reaches Genesys as an AudioHook event; its hang-up is a disconnect, then a normal close', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { AUDIOHOOK_CREDENTIALS: CREDENTIALS })
  const { client, session, texts, binary } = await connect(t, gateway)
  client.send(open(session, 'CONV-event'))
  const { playback_channel: channel } = await subscriber.waitForEvent('call.start', 'CONV-event') as CallStartEvent
  await nextOf(texts, 'opened')
  client.send(clientMessage(session, 'ping', 2, 1))
  await nextOf(texts, 'pong')
  const worker = playbackWorker(t, redis.url)
  // A transcript entity as the protocol reference's event message carries it.
  const entities = [{ type: 'transcript', data: { id: randomUUID(), channelId: 0, isFinal: true, alternatives: [{ confidence: 0.9, interpretations: [{ type: 'display', transcript: 'hello' }] }] } }]
  await worker.command(channel, { type: 'event', event: { entities } })
  t.same(await nextOf(texts, 'event'), { version: '2', type: 'event', seq: 3, clientseq: 2, id: session, parameters: { entities } })
  await worker.audio(channel, 8000, Buffer.alloc(1600))
  await worker.command(channel, { type: 'hangup' })
  t.same(await nextOf(texts, 'disconnect'), { version: '2', type: 'disconnect', seq: 4, clientseq: 2, id: session, parameters: { reason: 'completed', info: 'hangup' } })
  t.match(await client.closed, { code: 1000, reason: 'hangup' })
  t.match(await subscriber.waitForEvent('call.stop', 'CONV-event'), { reason: 'hangup' })
  t.equal(binary.length, 0, 'the worker\'s audio is not played: AudioHook plays none')
})

t.test('a worker\'s pause asks Genesys to pause, withholds the audio, and its resume asks Genesys to resume; the answers publish nothing more', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { AUDIOHOOK_CREDENTIALS: CREDENTIALS })
  const { client, session, texts } = await connect(t, gateway)
  client.send(open(session, 'CONV-worker-pause'))
  const { playback_channel: channel } = await subscriber.waitForEvent('call.start', 'CONV-worker-pause') as CallStartEvent
  await nextOf(texts, 'opened')
  client.ws.send(interleave(codes(0, 0), codes(1, 0)), { binary: true })
  const worker = playbackWorker(t, redis.url)
  await worker.command(channel, { type: 'pause' })
  // The protocol's server-initiated pause (https://developer.genesys.cloud/devapps/audiohook/protocol-reference).
  t.same(await nextOf(texts, 'pause'), { version: '2', type: 'pause', seq: 2, clientseq: 1, id: session, parameters: {} })
  t.match(await subscriber.waitForEvent('call.paused', 'CONV-worker-pause'), { source: 'worker' })
  client.ws.send(interleave(codes(0, 1), codes(1, 1)), { binary: true }) // in flight before Genesys paused: withheld
  client.send(clientMessage(session, 'paused', 2, 2))
  await worker.command(channel, { type: 'resume' })
  t.same(await nextOf(texts, 'resume'), { version: '2', type: 'resume', seq: 3, clientseq: 2, id: session, parameters: {} })
  client.send(clientMessage(session, 'resumed', 3, 3, { start: 'PT0.04S', discarded: 'PT0S' }))
  client.ws.send(interleave(codes(0, 2), codes(1, 2)), { binary: true })
  client.send(clientMessage(session, 'close', 4, 3, { reason: 'end' }))
  await nextOf(texts, 'closed')
  const stop = await subscriber.waitForEvent('call.stop', 'CONV-worker-pause')
  t.match(stop, { frames: 4, frames_withheld: 2, tracks: { inbound: { frames: 2, frames_withheld: 1 }, outbound: { frames: 2, frames_withheld: 1 } } })
  const events = subscriber.events('CONV-worker-pause').map(({ type }) => type)
  t.same(events, ['call.start', 'call.paused', 'call.resumed', 'call.stop'], 'Genesys\'s paused and resumed, answers to the worker\'s, publish nothing more')
  t.ok(subscriber.frames('CONV-worker-pause').map(({ pcm }) => pcm)[1].equals(expectedPcm(codes(0, 2))), 'audio resumes byte-exact')
})

t.test('the gateway\'s shutdown tells Genesys with a disconnect before the 1001', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { AUDIOHOOK_CREDENTIALS: CREDENTIALS })
  const { client, session, texts } = await connect(t, gateway)
  client.send(open(session, 'CONV-shutdown'))
  await subscriber.waitForEvent('call.start', 'CONV-shutdown')
  await nextOf(texts, 'opened')
  const closing = gateway.app.close()
  t.match(await nextOf(texts, 'disconnect'), { seq: 2, clientseq: 1, parameters: { reason: 'completed', info: 'shutdown' } })
  t.match(await client.closed, { code: 1001 })
  await closing
})

t.test('configuration: on by default but inert without credentials; SUPPORT_AUDIOHOOK=false; malformed credentials exit 78', async (t) => {
  const load = (env: Record<string, string>): ReturnType<typeof loadConfig> => loadConfig({ env, dotenvFiles: [] })
  t.match(load({}), { SUPPORT_AUDIOHOOK: true })
  t.notOk('AUDIOHOOK_CREDENTIALS' in load({}))
  const bad: Array<[string, RegExp]> = [
    [`${ORG}`, /AUDIOHOOK_CREDENTIALS entry 1 is not organizationId:apiKey or organizationId:apiKey:clientSecret/],
    [`{org}:${API_KEY}`, /AUDIOHOOK_CREDENTIALS entry 1: the organization id must be/],
    [`${ORG}:short`, /AUDIOHOOK_CREDENTIALS entry 1: the API key must be 8-256 printable characters/],
    [`${ORG}:${API_KEY}:not base64!`, /AUDIOHOOK_CREDENTIALS entry 1: the client secret must be base64/],
    [`${ORG}:${API_KEY},${OTHER_ORG}:${API_KEY}`, /AUDIOHOOK_CREDENTIALS entry 2: its API key is also another entry's/],
    [' , ', /AUDIOHOOK_CREDENTIALS names no credential/]
  ]
  for (const [value, message] of bad) t.throws(() => load({ AUDIOHOOK_CREDENTIALS: value }), { name: 'ConfigError', message }, value)

  const { gateway } = await startListenedGateway(t, redis.url)
  t.equal((await fetch(`${gateway.url}/v1/ingest/audiohook`)).status, 404, 'no credentials: no route')
  const off = await startListenedGateway(t, redis.url, { AUDIOHOOK_CREDENTIALS: CREDENTIALS, SUPPORT_AUDIOHOOK: 'false' })
  t.equal((await fetch(`${off.gateway.url}/v1/ingest/audiohook`)).status, 404, 'SUPPORT_AUDIOHOOK=false: no route')
  // X-API-KEY is then no credential the gateway knows: the loopback allowlist admits the request, and no vendor the open.
  const url = `${off.gateway.wsUrl}/v1/ingest`
  const session = randomUUID()
  const client = await ProviderClient.connect(url, { headers: signed(url, session) })
  client.send(open(session))
  const closed = await client.closed
  t.equal(closed.code, 1008, 'and no AudioHook on /v1/ingest')
  t.match(closed.reason, /^no enabled vendor sends a message like this one$/)

  const server = runServer(t.testdir(), { AUDIOHOOK_CREDENTIALS: `${ORG}:${API_KEY}:not base64!` })
  t.equal(await server.exited, 78)
  t.match(server.stderr(), /rtaa-ingest: invalid configuration: .*AUDIOHOOK_CREDENTIALS entry 1: the client secret must be base64/)
  t.notMatch(server.stderr(), new RegExp(API_KEY), 'the key is not echoed')
})

t.test('rtaa-sim --vendor audiohook completes signed sessions against a real gateway: stereo, mono, several calls', async (t) => {
  const dir = t.testdir()
  const server = await startToolsGateway(t, redis.url, { AUDIOHOOK_CREDENTIALS: CREDENTIALS })
  const subscriber = await Subscriber.start(t, redis.url, server.prefix)
  const base = ['--vendor', 'audiohook', '--url', `${server.wsUrl}/v1/ingest/audiohook`, '--duration', '0.4', '--audiohook-credentials', CREDENTIALS]

  const both = await tool('rtaa-sim', [...base, '--tracks', 'both', '--calls', '2', '--call-prefix', 'ahboth'], dir).done
  t.equal(both.code, 0, both.stderr)
  t.match(JSON.parse(both.stdout), { vendor: 'audiohook', sample_rate: 8000, completed: 2 })
  for (const id of ['ahboth-1', 'ahboth-2']) {
    t.match(await subscriber.waitForEvent('call.stop', id), { vendor: 'audiohook', reason: 'end', tenant_id: ORG, frames: 8, tracks: { inbound: { frames: 4 }, outbound: { frames: 4 } } })
    t.match(subscriber.events(id)[0], { tracks: ['inbound', 'outbound'], custom_parameters: { customConfig: { simulator: 'rtaa-sim' } } })
  }

  const mono = await tool('rtaa-sim', ['--vendor', 'audiohook', '--url', `${server.wsUrl}/v1/ingest`, '--duration', '0.4', '--call-prefix', 'ahmono'], dir,
    { AUDIOHOOK_CREDENTIALS: CREDENTIALS }).done
  t.equal(mono.code, 0, mono.stderr)
  t.match(await subscriber.waitForEvent('call.stop', 'ahmono-1'), { frames: 4, bytes: 4 * 1600 })
  t.same(subscriber.events('ahmono-1')[0].type, 'call.start')

  const unsigned = await tool('rtaa-sim', ['--vendor', 'audiohook', '--url', `${server.wsUrl}/v1/ingest/audiohook`, '--duration', '0.2'], dir).done
  t.equal(unsigned.code, 1)
  t.match(JSON.parse(unsigned.stdout), { results: [{ ok: false, error: /^upgrade refused: HTTP 401/ }] })
})
