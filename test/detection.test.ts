import { randomUUID } from 'node:crypto'
import t from 'tap'
import { signAudioHookUpgrade } from '../src/vendors/audiohook/audiohook-signature.js'
import { TestRedis } from './helpers/redis-server.js'
import { startListenedGateway } from './helpers/gateway.js'
import { audioHookOpen } from './helpers/audiohook.js'
import { ProviderClient, exotelNumbers, exotelStrings } from './helpers/exotel.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

t.test('each vendor is told apart on /v1/ingest from the literal messages of its docs', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const streams: Array<[string, Array<Record<string, unknown> | Buffer>]> = [
    ['exotel', [exotelStrings.connected(), exotelStrings.start('CAdetect1'), exotelStrings.stop('CAdetect1', 'MZCAdetect1', 2)]],
    ['exotel', [exotelNumbers.start('CAdetect2'), exotelNumbers.stop('CAdetect2', 'MZCAdetect2', 2)]],
    // Exotel's Agent-Stream reference shows connected with protocol and version fields.
    ['exotel', [{ event: 'connected', protocol: 'Exotel Media Stream', version: '1.0.0' }, exotelStrings.start('CAdetect3'), { event: 'stop' }]],
    ['twilio', [
      { event: 'connected', protocol: 'Call', version: '1.0.0' },
      { event: 'start', sequenceNumber: '1', start: { accountSid: 'AC1', streamSid: 'MZt', callSid: 'CAdetect4', tracks: ['inbound'], mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 } }, streamSid: 'MZt' },
      { event: 'stop', sequenceNumber: '2', streamSid: 'MZt', stop: { accountSid: 'AC1', callSid: 'CAdetect4' } }
    ]],
    // Plivo opens with its start (https://plivo.com/docs/voice-agents/audio-streaming/concepts/audio-streaming-reference);
    // it ends by closing the socket, or with the stop of its Java stream SDK.
    ['plivo', [
      {
        event: 'start',
        sequenceNumber: 1,
        start: { callId: 'CAdetect5', streamId: '87654321-4321-4321-4321-cba987654321', accountId: 'MAXXXXXXXXXXXXXXXXXX', tracks: ['inbound'], mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000 } },
        extra_headers: 'userId=12345;sessionId=abc-xyz'
      },
      { event: 'stop', sequenceNumber: 2, streamId: '87654321-4321-4321-4321-cba987654321' }
    ]],
    // Telnyx's connected fits everyone; its start's stream_id and call_control_id are its own
    // (https://developers.telnyx.com/docs/voice/programmable-voice/media-streaming).
    ['telnyx', [
      { event: 'connected', version: '1.0.0' },
      {
        event: 'start',
        sequence_number: '1',
        start: {
          user_id: '3E6F995F-85F7-4705-9741-53B116D28237',
          call_control_id: 'v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ',
          call_session_id: 'CAdetect6',
          from: '+13122010094',
          to: '+13122123456',
          tags: ['TAG1', 'TAG2'],
          client_state: 'aGF2ZSBhIG5pY2UgZGF5ID1d',
          media_format: { encoding: 'PCMU', sample_rate: 8000, channels: 1 }
        },
        stream_id: '32DE0DEA-53CB-4B21-89A4-9E1819C043BC'
      },
      { event: 'stop', sequence_number: '2', stop: { user_id: '3E6F995F-85F7-4705-9741-53B116D28237' }, stream_id: '32DE0DEA-53CB-4B21-89A4-9E1819C043BC' }
    ]],
    // Exotel's sequence_number is Telnyx's too: a counter alone claims neither.
    ['exotel', [exotelStrings.connected(), exotelStrings.start('CAdetect7'), exotelStrings.media('MZCAdetect7', 2, 1, 0, Buffer.alloc(320)), exotelStrings.stop('CAdetect7', 'MZCAdetect7', 3)]],
    // Vonage's first message (https://developer.vonage.com/en/voice/voice-api/concepts/websockets), then binary
    // audio; it sends no stop, so the stream ends with a normal close.
    ['vonage', [
      { event: 'websocket:connected', 'content-type': 'audio/l16;rate=16000', call_id: 'CAdetect8', language: 'en-GB', 'caller-id': '447700900123' },
      Buffer.alloc(640),
      { event: 'websocket:dtmf', digit: '5', duration: 260 }
    ]]
  ]
  for (const [index, [vendor, messages]] of streams.entries()) {
    const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
    for (const message of messages) {
      if (Buffer.isBuffer(message)) client.ws.send(message, { binary: true })
      else client.send(message)
    }
    if (vendor === 'vonage') client.ws.close(1000)
    t.equal((await client.closed).code, 1000)
    t.match(await subscriber.waitForEvent('call.stop', `CAdetect${index + 1}`), { vendor }, `stream ${index + 1} is ${vendor}`)
  }
})

t.test('AudioHook is told apart by its credential: X-API-KEY makes it the only candidate, and the others are told apart as before', async (t) => {
  const org = 'd7934305-0972-4844-938e-9060eef73d05'
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { AUDIOHOOK_CREDENTIALS: `${org}:SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh` })
  const exotel = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  for (const message of [exotelStrings.connected(), exotelStrings.start('CAdetectAH'), exotelStrings.stop('CAdetectAH', 'MZCAdetectAH', 2)]) exotel.send(message)
  t.match(await subscriber.waitForEvent('call.stop', 'CAdetectAH'), { vendor: 'exotel' })
  const connected = await gateway.logs.waitFor((line) => line.msg === 'connection opened' && Array.isArray(line.vendor_candidates))
  t.notOk((connected.vendor_candidates as string[]).includes('audiohook'), 'without X-API-KEY AudioHook is no candidate')

  // The open of https://developer.genesys.cloud/devapps/audiohook/session-walkthrough#open-transaction, unlike any other vendor's first message.
  const url = `${gateway.wsUrl}/v1/ingest`
  const id = randomUUID()
  const headers = signAudioHookUpgrade(url, { organizationId: org, apiKey: 'SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh', secret: null },
    { sessionId: id, correlationId: randomUUID(), nonce: 'unused', created: 0 })
  const audiohook = await ProviderClient.connect(url, { headers })
  audiohook.send(audioHookOpen(id, org, 'CAdetectAH2', [{ type: 'audio', format: 'PCMU', channels: ['external', 'internal'], rate: 8000 }]))
  await audiohook.received.waitFor((text) => text.includes('"opened"'))
  audiohook.send({ version: '2', type: 'close', seq: 2, serverseq: 1, id, position: 'PT0S', parameters: { reason: 'end' } })
  t.equal((await audiohook.closed).code, 1000)
  t.match(await subscriber.waitForEvent('call.stop', 'CAdetectAH2'), { vendor: 'audiohook', reason: 'end' })
})

t.test('Vonage says no to the other vendors\' first messages, and no other vendor claims websocket:connected', async (t) => {
  const { gateway } = await startListenedGateway(t, redis.url)
  const firsts: Record<string, Array<Record<string, unknown>>> = {
    exotel: [exotelStrings.connected(), exotelStrings.start('CAx'), exotelNumbers.start('CAy'), { event: 'connected', protocol: 'Exotel Media Stream', version: '1.0.0' }],
    twilio: [{ event: 'connected', protocol: 'Call', version: '1.0.0' }, { event: 'start', sequenceNumber: '1', start: { accountSid: 'AC1', streamSid: 'MZt', callSid: 'CAz' }, streamSid: 'MZt' }],
    native: [{ event: 'start', interaction_id: 'n-1', sample_rate: 16000 }],
    vonage: [{ event: 'websocket:connected', 'content-type': 'audio/l16;rate=16000', call_id: 'CAv' }]
  }
  const adapters = gateway.app.vendors
  const vonage = adapters.find(({ name }) => name === 'vonage')!
  for (const [vendor, messages] of Object.entries(firsts)) {
    for (const message of messages) {
      t.equal(vonage.detect(message), vendor === 'vonage' ? 'yes' : 'no', `Vonage on ${vendor}'s ${String(message.event)}`)
      if (vendor !== 'vonage') continue
      for (const other of adapters.filter(({ name }) => name !== 'vonage')) t.not(other.detect(message), 'yes', `${other.name} does not claim ${String(message.event)}`)
    }
  }
})

t.test('a stream no vendor claims is closed with 1008 and a log line', async (t) => {
  const { gateway } = await startListenedGateway(t, redis.url)
  const cases: Array<[string, Array<unknown>, RegExp]> = [
    ['five messages that fit everyone', Array.from({ length: 5 }, () => ({ event: 'connected' })), /^cannot tell the vendor from the first 4 messages$/],
    ['a binary frame first', [Buffer.from([1, 2, 3, 4])], /^cannot tell the vendor from a binary frame$/],
    ['snake_case and camelCase at once', [{ event: 'start', stream_sid: 'a', streamSid: 'a', start: {} }], /^the first messages fit more than one vendor \(exotel, twilio\)$/]
  ]
  for (const [name, messages, reason] of cases) {
    const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
    for (const message of messages) {
      if (Buffer.isBuffer(message)) client.ws.send(message, { binary: true })
      else client.send(message)
    }
    const closed = await client.closed
    t.equal(closed.code, 1008, name)
    t.match(closed.reason, reason, name)
    t.match(await gateway.logs.waitFor((line) => line.msg === 'closing connection: bad input' && reason.test(String(line.reason))),
      { level: 40, close_code: 1008, vendor_candidates: ['exotel', 'twilio', 'plivo', 'telnyx', 'vonage'] }, name)
  }
})

t.test('on a vendor route the stream is parsed as that vendor only', async (t) => {
  const { gateway } = await startListenedGateway(t, redis.url)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/exotel`)
  // Twilio's start: on the Exotel route it is a bad Exotel start, not a Twilio call.
  client.send({ event: 'start', start: { accountSid: 'AC1', streamSid: 'MZ', callSid: 'CAwrongroute' } })
  const closed = await client.closed
  t.equal(closed.code, 1007)
  t.match(closed.reason, /^invalid start message at \/start\/call_sid/)
})

t.test('SUPPORT_<VENDOR>=false removes the vendor from its route and from detection', async (t) => {
  const { gateway } = await startListenedGateway(t, redis.url, { SUPPORT_TWILIO: 'false', SUPPORT_PLIVO: 'false', SUPPORT_TELNYX: 'false' })
  const response = await fetch(`${gateway.url}/v1/ingest/twilio`)
  t.equal(response.status, 404)
  // Vonage says no to a start, so Exotel is the only vendor left: /v1/ingest parses strictly as Exotel, and a Twilio
  // start is a bad Exotel start.
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  client.send({ event: 'start', start: { accountSid: 'AC1', streamSid: 'MZ', callSid: 'CAnotwilio' } })
  const closed = await client.closed
  t.equal(closed.code, 1007)
  t.match(closed.reason, /^invalid start message at \/start\/call_sid/)
})

t.test('SUPPORT_TELNYX=false: no Telnyx route, and a Telnyx start on /v1/ingest is no one\'s', async (t) => {
  const { gateway } = await startListenedGateway(t, redis.url, { SUPPORT_TELNYX: 'false' })
  t.equal((await fetch(`${gateway.url}/v1/ingest/telnyx`)).status, 404)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  client.send({ event: 'start', sequence_number: '1', stream_id: 'S1', start: { call_control_id: 'v2:x', call_session_id: 'CAnotelnyx', media_format: { encoding: 'PCMU', sample_rate: 8000 } } })
  const closed = await client.closed
  t.equal(closed.code, 1007)
  // The close frame's reason is cut to fit; the log line has it whole.
  const logged = await gateway.logs.waitFor((line) => line.msg === 'closing connection: bad input', 'the refusal')
  t.same(logged.vendor_candidates, ['exotel', 'twilio', 'plivo', 'vonage'], 'Telnyx is no candidate')
  t.match(logged, { reason: /^no enabled vendor accepts this message \(exotel: invalid start message at \/start\/call_sid.*; twilio: invalid start message at \/start\/accountSid/ })
})
