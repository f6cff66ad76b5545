import t from 'tap'
import { TestRedis } from './helpers/redis-server.js'
import { startListenedGateway } from './helpers/gateway.js'
import { ProviderClient, exotelNumbers, exotelStrings } from './helpers/exotel.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

t.test('each vendor is told apart on /v1/ingest from the literal messages of its docs', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const streams: Array<[string, unknown[]]> = [
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
    ]]
  ]
  for (const [index, [vendor, messages]] of streams.entries()) {
    const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
    for (const message of messages) client.send(message)
    t.equal((await client.closed).code, 1000)
    t.match(await subscriber.waitForEvent('call.stop', `CAdetect${index + 1}`), { vendor }, `stream ${index + 1} is ${vendor}`)
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
      { level: 40, close_code: 1008, vendor_candidates: ['exotel', 'twilio'] }, name)
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
  const { gateway } = await startListenedGateway(t, redis.url, { SUPPORT_TWILIO: 'false', SUPPORT_PLIVO: 'false' })
  const response = await fetch(`${gateway.url}/v1/ingest/twilio`)
  t.equal(response.status, 404)
  // Exotel is the only vendor left, so /v1/ingest parses strictly as Exotel, and a Twilio start is a bad Exotel start.
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  client.send({ event: 'start', start: { accountSid: 'AC1', streamSid: 'MZ', callSid: 'CAnotwilio' } })
  const closed = await client.closed
  t.equal(closed.code, 1007)
  t.match(closed.reason, /^invalid start message at \/start\/call_sid/)
})
