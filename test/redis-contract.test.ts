import { readFileSync } from 'node:fs'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { encodeAudioFrame, type AudioFrameHeader } from '../src/bus/audio-frame.js'
import { signAudioHookUpgrade } from '../src/vendors/audiohook/audiohook-signature.js'
import { audioHookOpen } from './helpers/audiohook.js'
import { TestRedis } from './helpers/redis-server.js'
import { startGateway, waitReady, type Gateway } from './helpers/gateway.js'
import { ProviderClient, exotelStrings, pcmFrame } from './helpers/exotel.js'
import { inSeconds, signJwt } from './helpers/jwt.js'
import { Collected } from './helpers/waiter.js'

/*
 * docs/redis-contract.md is what workers in other languages build against. This test reads the field tables out of
 * the document and decodes what the gateway publishes with a decoder written from the document alone (no import
 * from src/), so the document and the code cannot drift apart unnoticed.
 */

const doc = readFileSync(new URL('../docs/redis-contract.md', import.meta.url), 'utf8')

/** The `field` | type rows of the first table after a heading or marker line. */
function fieldTable (marker: string): Map<string, string> {
  const start = doc.indexOf(marker)
  if (start === -1) throw new Error(`docs/redis-contract.md has no "${marker}"`)
  const lines = doc.slice(start + marker.length).split('\n')
  const firstRow = lines.findIndex((line) => line.startsWith('|'))
  const fields = new Map<string, string>()
  for (const line of lines.slice(firstRow)) {
    if (!line.startsWith('|')) break
    const match = /^\| `([a-z_]+)` \| ([^|]+?) \|/.exec(line)
    if (match !== null) fields.set(match[1], match[2])
  }
  return fields
}

/**
 * A name as the document's "Channels" table spells it: literals in backticks, and the words tenant, interaction_id
 * and "call tag" standing for their values. As the table says, tenant is the tenant_id when verified, `~` and the
 * tenant_id when not, `_` for none.
 */
function documentedName (name: string, prefix: string, tenantId: string | null, verified: boolean, interactionId: string): string {
  const row = new RegExp(`^\\| ${name} \\| ([^|]+) \\|`, 'm').exec(doc)
  if (row === null) throw new Error(`docs/redis-contract.md does not spell the ${name}`)
  const spelled = row[1].split(/[,;]/)[0]
  return [...spelled.matchAll(/`([^`]*)`|(call tag|tenant|interaction_id)/g)].map(([, literal, word]) => {
    if (literal !== undefined) return literal.replace('{prefix}', prefix)
    if (word === 'tenant') return tenantId === null ? '_' : verified ? tenantId : `~${tenantId}`
    if (word === 'interaction_id') return interactionId
    return documentedName('call tag', prefix, tenantId, verified, interactionId)
  }).join('')
}

/** Whether a value fits a documented type such as "string", "number or null" or "object". */
function fitsType (value: unknown, documented: string): boolean {
  return documented.split(' or ').some((type) => {
    if (type === 'null') return value === null
    if (type === 'object') return typeof value === 'object' && value !== null && !Array.isArray(value)
    if (type === 'array of strings') return Array.isArray(value) && value.every((item) => typeof item === 'string')
    const kind: string = typeof value
    return kind === type
  })
}

/** The reference decoder, as docs/redis-contract.md "Audio frames" describes the layout. */
function decodeFrame (message: Buffer): { header: Record<string, unknown>, pcm: Buffer } {
  const headerLength = message.readUInt32BE(0)
  return {
    header: JSON.parse(message.toString('utf8', 4, 4 + headerLength)) as Record<string, unknown>,
    pcm: message.subarray(4 + headerLength)
  }
}

interface Published {
  channel: string
  message: Buffer
}

/** One call's events and frames, each checked to carry exactly the documented fields, of the documented types. */
function documentedCall (t: Test, published: Published[], interactionId: string): { events: Array<Record<string, unknown>>, frames: Array<{ header: Record<string, unknown>, pcm: Buffer }> } {
  const events = published.filter(({ channel }) => channel.endsWith('calls'))
    .map(({ message }) => JSON.parse(message.toString()) as Record<string, unknown>)
    .filter((event) => event.interaction_id === interactionId)
  for (const event of events) {
    const documented = new Map([...baseFields, ...eventFields[event.type as keyof typeof eventFields]])
    t.same(Object.keys(event).sort(), [...documented.keys()].sort(), `${String(event.vendor)} ${String(event.type)} has exactly the documented fields`)
    for (const [field, type] of documented) t.ok(fitsType(event[field], type), `${String(event.type)}.${field} is ${type}`)
  }
  const frames = published.filter(({ channel }) => channel === events[0]?.audio_channel).map(({ message }) => decodeFrame(message))
  // `track` is documented as present in a call with two tracks only.
  const oneTrack = (events[0]?.tracks as string[]).length === 1
  const frameFields = new Map([...headerFields].filter(([field]) => !(oneTrack && field === 'track')))
  for (const [i, { header }] of frames.entries()) {
    t.same(Object.keys(header).sort(), [...frameFields.keys()].sort(), `${String(events[0].vendor)} frame ${i + 1} has exactly the documented header fields`)
    for (const [field, type] of frameFields) t.ok(fitsType(header[field], type), `header.${field} is ${type}`)
  }
  return { events, frames }
}

/** A gateway with the default prefix, and a plain ioredis subscriber: nothing from src/ reads what is published. */
async function gatewayWithRawSubscriber (t: Test, env: Record<string, string> = {}): Promise<{ gateway: Gateway, published: Collected<Published>, redisUrl: string }> {
  const redis = await TestRedis.start()
  t.teardown(() => redis.stop())
  const gateway = await startGateway(t, redis.url, { REDIS_PREFIX: 'rtaa:', ...env })
  await waitReady(gateway)
  const published = new Collected<Published>()
  const subscriber = new Redis(redis.url)
  t.teardown(() => subscriber.disconnect())
  subscriber.on('pmessageBuffer', (_pattern: Buffer, channel: Buffer, message: Buffer) => published.push({ channel: channel.toString(), message }))
  await subscriber.psubscribe('rtaa:*')
  return { gateway, published, redisUrl: redis.url }
}

const baseFields = fieldTable('### Fields every event carries')
const eventFields = {
  'call.start': fieldTable('### `call.start`'),
  'call.dtmf': fieldTable('### `call.dtmf`'),
  'call.mark': fieldTable('### `call.mark`'),
  'call.paused': fieldTable('### `call.paused`'),
  'call.resumed': fieldTable('### `call.resumed`'),
  'call.stop': fieldTable('### `call.stop`')
}
const headerFields = fieldTable('Header fields:')

t.test('the document names the fields the issue promised', async (t) => {
  t.same([...baseFields.keys()], ['type', 'interaction_id', 'tenant_id', 'tenant_verified', 'vendor', 'stream_id', 'ts'])
  t.same([...headerFields.keys()], ['interaction_id', 'tenant_id', 'seq', 'vendor_seq', 'timestamp_ms', 'sample_rate', 'encoding', 'channels', 'track'])
  t.same([...eventFields['call.stop'].keys()], ['reason', 'frames', 'bytes', 'duration_ms', 'frames_lost', 'gaps', 'duplicates', 'reordered', 'frames_withheld', 'bytes_withheld', 'tracks'])
})

t.test("the document's worked example decodes to what the document says", async (t) => {
  const dump = /```\n(00000000:[\s\S]*?)```/.exec(doc)?.[1]
  t.ok(dump, 'a hex dump is in the document')
  const bytes = Buffer.from((dump ?? '').split('\n').map((line) => line.slice(10, 49).replace(/ /g, '')).join(''), 'hex')
  const { header, pcm } = decodeFrame(bytes)
  t.same(header, { interaction_id: 'CA9f3b2a71c4', tenant_id: 'AC51d0e8', seq: 1, vendor_seq: 2, timestamp_ms: 100, sample_rate: 8000, encoding: 'pcm_s16le', channels: 1 })
  t.same([0, 2, 4, 6].map((offset) => pcm.readInt16LE(offset)), [0, 1000, -1000, 32767])
})

t.test('the header encoder writes exactly the bytes JSON.stringify would', async (t) => {
  const headers: AudioFrameHeader[] = [
    { interaction_id: 'CA1', tenant_id: 'AC1', seq: 1, vendor_seq: 2, timestamp_ms: 0, sample_rate: 8000, encoding: 'pcm_s16le', channels: 1 },
    { interaction_id: 'ca-"quoted"\\\n-ñ-通话-😀', tenant_id: null, seq: 2 ** 40, vendor_seq: null, timestamp_ms: 1.5, sample_rate: 16000, encoding: 'pcm_s16le', channels: 1 },
    { interaction_id: '', tenant_id: 't"\\', seq: 0, vendor_seq: Number.NaN, timestamp_ms: Number.POSITIVE_INFINITY, sample_rate: -1, encoding: 'pcm_s16le', channels: 1 }
  ]
  const pcm = Buffer.from([1, 2, 3, 4])
  for (const header of headers) {
    const json = Buffer.from(JSON.stringify(header))
    const expected = Buffer.concat([Buffer.alloc(4), json, pcm])
    expected.writeUInt32BE(json.length, 0)
    t.same(encodeAudioFrame(header, pcm), expected, header.interaction_id)
  }
})

t.test('what the gateway publishes matches the document field for field', async (t) => {
  const { gateway, published, redisUrl } = await gatewayWithRawSubscriber(t, { EXOTEL_ACCOUNT_SIDS: 'ACxxxxxxxxxxxxxxxxxxxxxxxx' })

  const sampleRate = 16000
  const sent = [pcmFrame(3200, 1), pcmFrame(640, 2), pcmFrame(1600, 3)]
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=${sampleRate}`)
  client.send(exotelStrings.start('CAcontract', 'MZcontract'))
  client.send(exotelStrings.media('MZcontract', 2, 1, 0, sent[0]))
  client.send({ event: 'media', stream_sid: 'MZcontract', media: { payload: sent[1].toString('base64') } })
  client.send(exotelStrings.dtmf('MZcontract', 4, '#'))
  client.send(exotelStrings.media('MZcontract', 5, 3, 120, sent[2]))
  client.send(exotelStrings.mark('MZcontract', 6, 'turn-1'))
  // A pause and its resume, by a worker on the control channel, with nothing sent between them.
  const worker = new Redis(redisUrl)
  t.teardown(() => worker.disconnect())
  const control = documentedName('playback channel', 'rtaa:', 'ACxxxxxxxxxxxxxxxxxxxxxxxx', true, 'CAcontract')
  await worker.publish(control, JSON.stringify({ type: 'pause' }))
  await published.waitFor(({ message }) => message.includes('"call.paused"'), 'call.paused')
  await worker.publish(control, JSON.stringify({ type: 'resume' }))
  await published.waitFor(({ message }) => message.includes('"call.resumed"'), 'call.resumed')
  client.send(exotelStrings.stop('CAcontract', 'MZcontract', 7))
  await client.closed
  await published.waitFor(({ message }) => message.includes('"call.stop"'), 'call.stop')

  const { events, frames } = documentedCall(t, published.items, 'CAcontract')
  t.same(events.map((event) => event.type), ['call.start', 'call.dtmf', 'call.mark', 'call.paused', 'call.resumed', 'call.stop'])
  const tenant = 'ACxxxxxxxxxxxxxxxxxxxxxxxx'
  t.equal(events[0].tenant_verified, true, 'EXOTEL_ACCOUNT_SIDS vouches for the account')
  t.equal(events[0].audio_channel, documentedName('audio channel', 'rtaa:', tenant, true, 'CAcontract'), 'call.start names the audio channel as the document spells it')
  t.equal(events[0].audio_channel, 'rtaa:audio:{ACxxxxxxxxxxxxxxxxxxxxxxxx:CAcontract}')
  t.equal(events[0].playback_channel, documentedName('playback channel', 'rtaa:', tenant, true, 'CAcontract'), 'and the playback channel')
  t.equal(events[0].contract_version, 2)

  t.equal(frames.length, sent.length)
  let bytesBefore = 0
  frames.forEach(({ header, pcm }, i) => {
    t.ok(pcm.equals(sent[i]), `frame ${i + 1} carries the PCM sent`)
    t.equal(header.seq, i + 1)
    t.match(header, { interaction_id: 'CAcontract', tenant_id: tenant, sample_rate: sampleRate, encoding: 'pcm_s16le', channels: 1 })
    if (i === 1) {
      // No media.timestamp: "floor(bytes_before / (sample_rate * 2 / 1000))".
      t.equal(header.timestamp_ms, Math.floor(bytesBefore / (sampleRate * 2 / 1000)))
      t.equal(header.vendor_seq, null)
    }
    bytesBefore += pcm.length
  })
  t.match(frames.map(({ header }) => header), [{ vendor_seq: 2, timestamp_ms: 0 }, {}, { vendor_seq: 5, timestamp_ms: 120 }])
  t.match(events[5], { reason: 'callended', frames: 3, bytes: bytesBefore, frames_withheld: 0 })

  // "call.start is published before the first audio frame … and call.stop after the last frame".
  const order = published.items.filter(({ channel }) => !channel.startsWith('rtaa:playback:'))
    .map(({ channel, message }) => channel === 'rtaa:calls' ? String(JSON.parse(message.toString()).type) : 'audio')
  t.same(order, ['call.start', 'audio', 'audio', 'call.dtmf', 'audio', 'call.mark', 'call.paused', 'call.resumed', 'call.stop'])
})

t.test('Twilio, native, Telnyx and Vonage calls publish the same documented shapes', async (t) => {
  const secret = 'contract-test-secret-of-32-bytes-at-least'
  const { gateway, published } = await gatewayWithRawSubscriber(t, { SUPPORT_NATIVE: 'true', JWT_SECRET: secret })

  const twilio = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  twilio.send({ event: 'connected', protocol: 'Call', version: '1.0.0' })
  twilio.send({ event: 'start', sequenceNumber: '1', streamSid: 'MZtw', start: { accountSid: 'ACtw', streamSid: 'MZtw', callSid: 'CAtw', mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 } } })
  twilio.send({ event: 'media', sequenceNumber: '2', streamSid: 'MZtw', media: { track: 'inbound', chunk: '1', timestamp: '0', payload: Buffer.alloc(160, 0xff).toString('base64') } })
  twilio.send({ event: 'dtmf', sequenceNumber: '3', streamSid: 'MZtw', dtmf: { track: 'inbound_track', digit: '1' } })
  twilio.send({ event: 'mark', sequenceNumber: '4', streamSid: 'MZtw', mark: { name: 'm' } })
  twilio.send({ event: 'stop', sequenceNumber: '5', streamSid: 'MZtw', stop: { accountSid: 'ACtw', callSid: 'CAtw' } })
  await twilio.closed

  const native = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`, { headers: { authorization: `Bearer ${signJwt({ tenant_id: 'tn', exp: inSeconds(60) }, secret)}` } })
  native.send({ event: 'start', interaction_id: 'native-contract', metadata: { k: 'v' } })
  native.ws.send(Buffer.alloc(960), { binary: true })
  native.send({ event: 'stop', reason: 'done' })
  await native.closed
  // Vonage (https://developer.vonage.com/en/voice/voice-api/concepts/websockets): no stop, the socket closes.
  const vonage = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  vonage.send({ event: 'websocket:connected', 'content-type': 'audio/l16;rate=16000', call_id: 'vonage-contract', account_id: 'a1b2c3d4' })
  vonage.ws.send(Buffer.alloc(640), { binary: true })
  vonage.send({ event: 'websocket:dtmf', digit: '5', duration: 260 })
  vonage.send({ event: 'websocket:notify', payload: { name: 'm' } })
  await published.waitFor(({ message }) => message.includes('"call.mark"') && message.includes('vonage-contract'), 'vonage call.mark')
  vonage.ws.close(1000)
  await vonage.closed
  await published.waitFor(({ message }) => message.includes('"call.stop"') && message.includes('native-contract'), 'native call.stop')
  await published.waitFor(({ message }) => message.includes('"call.stop"') && message.includes('vonage-contract'), 'vonage call.stop')
  await published.waitFor(({ message }) => message.includes('"call.stop"') && message.includes('CAtw'), 'twilio call.stop')

  const telnyx = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  telnyx.send({ event: 'connected', version: '1.0.0' })
  telnyx.send({ event: 'start', sequence_number: '1', stream_id: 'S-tx', start: { user_id: 'U-tx', call_control_id: 'v3:tx', call_session_id: 'tx-session', from: '+13122010094', to: '+13122123456', media_format: { encoding: 'PCMA', sample_rate: 8000, channels: 1 } } })
  telnyx.send({ event: 'media', sequence_number: '2', media: { track: 'inbound', chunk: '1', timestamp: '0', payload: Buffer.alloc(160, 0xd5).toString('base64') }, stream_id: 'S-tx' })
  telnyx.send({ event: 'dtmf', stream_id: 'S-tx', occurred_at: '2025-06-05T08:54:19.698408Z', sequence_number: '3', dtmf: { digit: '1' } })
  telnyx.send({ event: 'mark', stream_id: 'S-tx', sequence_number: '4', mark: { name: 'm' } })
  telnyx.send({ event: 'stop', sequence_number: '5', stop: { user_id: 'U-tx', call_control_id: 'v3:tx' }, stream_id: 'S-tx' })
  await telnyx.closed
  await published.waitFor(({ message }) => message.includes('"call.stop"') && message.includes('tx-session'), 'telnyx call.stop')

  const tw = documentedCall(t, published.items, 'CAtw')
  t.same(tw.events.map((event) => event.type), ['call.start', 'call.dtmf', 'call.mark', 'call.stop'])
  t.match(tw.events[0], { vendor: 'twilio', sample_rate: 8000, tenant_id: 'ACtw', tenant_verified: false })
  t.equal(tw.events[0].audio_channel, documentedName('audio channel', 'rtaa:', 'ACtw', false, 'CAtw'), 'an account merely named is marked in the names')
  t.equal(tw.frames.length, 1)
  t.ok(tw.frames[0].pcm.equals(Buffer.alloc(320)), 'μ-law 0xff is silence: 160 samples of PCM 0')

  const tx = documentedCall(t, published.items, 'tx-session')
  t.same(tx.events.map((event) => event.type), ['call.start', 'call.dtmf', 'call.mark', 'call.stop'])
  t.match(tx.events[0], { vendor: 'telnyx', sample_rate: 8000, tenant_id: 'U-tx', tenant_verified: false, stream_id: 'S-tx', from: '+13122010094', custom_parameters: { call_control_id: 'v3:tx' } })
  t.equal(tx.frames.length, 1)
  t.ok(tx.frames[0].pcm.equals(Buffer.alloc(320).fill(Buffer.from([8, 0]))), 'A-law 0xd5 is the smallest positive step: 160 samples of PCM 8')

  const nv = documentedCall(t, published.items, 'native-contract')
  t.same(nv.events.map((event) => event.type), ['call.start', 'call.stop'])
  t.match(nv.events[0], { vendor: 'native', tenant_id: 'tn', tenant_verified: true, sample_rate: 24000, custom_parameters: { k: 'v' } })
  t.equal(nv.events[0].playback_channel, documentedName('playback channel', 'rtaa:', 'tn', true, 'native-contract'))
  t.match(nv.events[1], { reason: 'done', frames: 1, bytes: 960 })
  t.equal(nv.frames.length, 1)

  const vn = documentedCall(t, published.items, 'vonage-contract')
  t.same(vn.events.map((event) => event.type), ['call.start', 'call.dtmf', 'call.mark', 'call.stop'])
  t.match(vn.events[0], { vendor: 'vonage', tenant_id: 'a1b2c3d4', tenant_verified: false, sample_rate: 16000, stream_id: null })
  t.equal(vn.events[0].audio_channel, documentedName('audio channel', 'rtaa:', 'a1b2c3d4', false, 'vonage-contract'))
  t.match(vn.events[3], { reason: 'disconnected', frames: 1, bytes: 640 })
  t.equal(vn.frames.length, 1)
  // Plivo, L16 at 16 kHz (https://plivo.com/docs/voice-agents/audio-streaming/concepts/audio-streaming-reference).
  const plivo = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  const streamId = '87654321-4321-4321-4321-cba987654321'
  plivo.send({ event: 'start', sequenceNumber: 1, start: { callId: 'CApl', streamId, accountId: 'MApl', tracks: ['inbound'], mediaFormat: { encoding: 'audio/x-l16', sampleRate: 16000 } }, extra_headers: 'userId=12345' })
  plivo.send({ event: 'media', sequenceNumber: 2, streamId, media: { track: 'inbound', timestamp: '1705312200000', chunk: 1, payload: pcmFrame(640, 4).toString('base64') } })
  plivo.send({ event: 'dtmf', sequenceNumber: 3, streamId, dtmf: { track: 'inbound', digit: '5', timestamp: '1705312200020' } })
  plivo.send({ event: 'playedStream', sequenceNumber: 4, streamId, name: 'm' })
  plivo.close()
  await published.waitFor(({ message }) => message.includes('"call.stop"') && message.includes('CApl'), 'plivo call.stop')
  const pl = documentedCall(t, published.items, 'CApl')
  t.same(pl.events.map((event) => event.type), ['call.start', 'call.dtmf', 'call.mark', 'call.stop'])
  t.match(pl.events[0], { vendor: 'plivo', sample_rate: 16000, tenant_id: 'MApl', stream_id: streamId, custom_parameters: { userId: '12345' } })
  t.match(pl.frames.map(({ header }) => header), [{ vendor_seq: 2, timestamp_ms: 0, sample_rate: 16000 }])
  t.ok(pl.frames[0].pcm.equals(pcmFrame(640, 4)), 'L16 is published as it came')
  t.match(pl.events[3], { reason: 'disconnected', frames: 1, bytes: 640 })
})

t.test('a Genesys AudioHook call publishes the same documented shapes', async (t) => {
  const org = 'd7934305-0972-4844-938e-9060eef73d05'
  const { gateway, published } = await gatewayWithRawSubscriber(t, { AUDIOHOOK_CREDENTIALS: `${org}:contract-api-key` })
  const url = `${gateway.wsUrl}/v1/ingest`
  const id = '30b0e395-84d3-4570-ac13-9a62d8f514c0'
  const client = await ProviderClient.connect(url, {
    headers: signAudioHookUpgrade(url, { organizationId: org, apiKey: 'contract-api-key', secret: null }, { sessionId: id, correlationId: id, nonce: 'n', created: 0 })
  })
  // The open of https://developer.genesys.cloud/devapps/audiohook/session-walkthrough#open-transaction, mono.
  client.send(audioHookOpen(id, org, 'ah-contract', [{ type: 'audio', format: 'PCMU', channels: ['external'], rate: 8000 }]))
  await client.received.waitFor((text) => text.includes('"opened"'))
  client.ws.send(Buffer.alloc(160, 0xff), { binary: true })
  client.send({ version: '2', type: 'close', seq: 2, serverseq: 1, id, position: 'PT0.02S', parameters: { reason: 'end' } })
  await client.closed
  await published.waitFor(({ message }) => message.includes('"call.stop"') && message.includes('ah-contract'), 'audiohook call.stop')

  const ah = documentedCall(t, published.items, 'ah-contract')
  t.same(ah.events.map((event) => event.type), ['call.start', 'call.stop'])
  t.match(ah.events[0], { vendor: 'audiohook', sample_rate: 8000, tenant_id: org, tenant_verified: true, stream_id: id, from: '+1-555-555-1234', to: '+1-800-555-6789' })
  t.match(ah.frames.map(({ header }) => header), [{ vendor_seq: null, timestamp_ms: 0, sample_rate: 8000 }])
  t.ok(ah.frames[0].pcm.equals(Buffer.alloc(320)), 'μ-law 0xff is silence: 160 samples of PCM 0')
  t.match(ah.events[1], { reason: 'end', frames: 1, bytes: 320 })
})
