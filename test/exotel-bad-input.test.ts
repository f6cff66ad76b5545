import t, { type Test } from 'tap'
import { TestRedis } from './helpers/redis-server.js'
import { startListenedGateway, type Gateway } from './helpers/gateway.js'
import { ProviderClient, exotelStrings, pcmFrame } from './helpers/exotel.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

const MAX_MESSAGE_BYTES = 8192

interface BadCase {
  name: string
  /** Messages sent after the connection opens; the last one is the bad one. */
  messages: (callSid: string) => Array<unknown>
  binary?: boolean
  code: number
  reason: RegExp
  /** The close frame's reason when it differs from the logged one (ws closes 1009 itself, without a reason). */
  closeReason?: RegExp
  /** Whether a call had started, so call.stop must say protocol_error. */
  started: boolean
  /** The route this case is for, when the two differ. */
  only?: string
  /** No vendor can be told from it, so on the shared /v1/ingest the log names the candidates, not a vendor. */
  undetectable?: boolean
}

const start = (callSid: string): unknown => exotelStrings.start(callSid)
const media = (callSid: string, payload: string): unknown => ({ event: 'media', stream_sid: `MZ${callSid}`, media: { payload } })

const cases: BadCase[] = [
  { name: 'media before start', messages: (c) => [media(c, pcmFrame(320, 1).toString('base64'))], code: 1008, reason: /^media before start$/, started: false },
  { name: 'dtmf before start', messages: (c) => [exotelStrings.dtmf(`MZ${c}`, 1, '1')], code: 1008, reason: /^dtmf before start$/, started: false },
  { name: 'a second start', messages: (c) => [start(c), start(c)], code: 1008, reason: /^second start on one stream$/, started: true },
  { name: 'invalid base64', messages: (c) => [start(c), media(c, 'AAAA!AAA')], code: 1007, reason: /^payload is not valid base64$/, started: true },
  { name: 'an odd number of PCM bytes', messages: (c) => [start(c), media(c, Buffer.alloc(321).toString('base64'))], code: 1007, reason: /not a whole number of 16-bit samples/, started: true },
  { name: 'a message that is not JSON', messages: (c) => [start(c), '{"event":"media",'], code: 1007, reason: /^message is not JSON$/, started: true },
  { name: 'a JSON array', messages: () => ['[1,2,3]'], code: 1007, reason: /^message is not a JSON object$/, started: false, undetectable: true },
  { name: 'a JSON string', messages: () => ['"start"'], code: 1007, reason: /^message is not a JSON object$/, started: false, undetectable: true },
  { name: 'a message without an event', only: '/v1/ingest/exotel', messages: () => [{ start: {} }], code: 1007, reason: /no string "event" field/, started: false },
  // On the shared route no vendor claims it, so it is refused as a stream from no known vendor.
  { name: 'a message without an event', only: '/v1/ingest', messages: () => [{ start: {} }], code: 1008, reason: /^no enabled vendor sends a message like this one$/, started: false, undetectable: true },
  { name: 'a start without call_sid', messages: () => [{ event: 'start', start: { account_sid: 'AC1' } }], code: 1007, reason: /^invalid start message at \/start\/call_sid/, started: false },
  { name: 'a call_sid unfit for a channel name', messages: () => [{ event: 'start', start: { call_sid: 'CA 1*' } }], code: 1007, reason: /^invalid start message at \/start\/call_sid/, started: false },
  { name: 'a media payload that is a number', messages: (c) => [start(c), { event: 'media', media: { payload: 42 } }], code: 1007, reason: /^invalid media message at \/media\/payload/, started: true },
  { name: 'a non-numeric sequence_number', messages: (c) => [start(c), { ...(media(c, 'AAAA') as object), sequence_number: 'x7' }], code: 1007, reason: /^invalid media message at \/sequence_number/, started: true },
  { name: 'a message over MAX_MESSAGE_BYTES', messages: (c) => [start(c), media(c, Buffer.alloc(MAX_MESSAGE_BYTES).toString('base64'))], code: 1009, reason: /^Max payload size exceeded$/, closeReason: /^$/, started: true },
  { name: 'a binary frame', messages: (c) => [start(c), Buffer.from('{"event":"media"}')], binary: true, code: 1003, reason: /^binary frames are not part of the Exotel protocol$/, started: true }
]

async function goodCallUnderway (t: Test, gateway: Gateway): Promise<{ client: ProviderClient, sendFrame: (i: number) => void }> {
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=16000`)
  client.send(exotelStrings.start('CAgood'))
  t.teardown(() => client.ws.terminate())
  return { client, sendFrame: (i) => client.send(exotelStrings.media('MZCAgood', i + 2, i + 1, i * 20, pcmFrame(640, i))) }
}

for (const path of ['/v1/ingest', '/v1/ingest/exotel']) {
  t.test(`on ${path}, each bad input closes only its own connection, with the fitting code and a log line`, async (t) => {
    const { gateway, subscriber } = await startListenedGateway(t, redis.url, { MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES) })
    const good = await goodCallUnderway(t, gateway)
    let sent = 0

    for (const [index, bad] of cases.entries()) {
      if (bad.only !== undefined && bad.only !== path) continue
      const callSid = `CAbad${index}`
      const client = await ProviderClient.connect(`${gateway.wsUrl}${path}?sample-rate=8000`)
      for (const message of bad.messages(callSid)) {
        if (Buffer.isBuffer(message)) client.ws.send(message, { binary: bad.binary === true })
        else client.send(message)
        good.sendFrame(sent++)
      }
      const closed = await client.closed
      t.equal(closed.code, bad.code, `${bad.name}: close code`)
      t.match(closed.reason, bad.closeReason ?? bad.reason, `${bad.name}: close reason`)

      const logged = await gateway.logs.waitFor((line) => line.msg === 'closing connection: bad input' &&
      line.close_code === bad.code && bad.reason.test(String(line.reason)), `${bad.name}: log line`)
      const who = bad.undetectable === true && path === '/v1/ingest' ? { vendor_candidates: ['exotel', 'twilio'] } : { vendor: 'exotel' }
      t.match(logged, { level: 40, ...who }, `${bad.name}: the log line names the vendor and the reason`)
      if (bad.started) t.equal(logged.interaction_id, callSid, `${bad.name}: the log line names the call`)
      if (bad.started) {
        t.match(await subscriber.waitForEvent('call.stop', callSid), { reason: 'protocol_error' }, `${bad.name}: call.stop published`)
      }
    }

    good.sendFrame(sent++)
    good.client.send(exotelStrings.stop('CAgood', 'MZCAgood', sent + 2))
    t.equal((await good.client.closed).code, 1000, 'the good call ends normally')
    t.match(await subscriber.waitForEvent('call.stop', 'CAgood'), { reason: 'callended', frames: sent }, 'the good call lost nothing')
    t.equal(subscriber.frames('CAgood').length, sent)
    t.same(subscriber.frames('CAgood').map((f) => f.header.seq), Array.from({ length: sent }, (_, i) => i + 1))
    t.same(gateway.app.liveCalls.snapshot().filter((call) => call.state === 'live'), [], 'no call is left in the registry')
  })
}

t.test('a second connection for a live call is refused without disturbing the first', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const first = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  first.send(exotelStrings.start('CAtwice'))
  await subscriber.waitForEvent('call.start', 'CAtwice')
  const second = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  second.send(exotelStrings.start('CAtwice'))
  t.same(await second.closed, { code: 1008, reason: 'call CAtwice is already streaming' })
  first.send(exotelStrings.media('MZCAtwice', 2, 1, 0, pcmFrame(320, 1)))
  first.send(exotelStrings.stop('CAtwice', 'MZCAtwice', 3))
  t.equal((await first.closed).code, 1000)
  t.match(await subscriber.waitForEvent('call.stop', 'CAtwice'), { reason: 'callended', frames: 1 })
  t.equal(subscriber.events('CAtwice').filter((e) => e.type === 'call.start').length, 1, 'one call.start only')
})

t.test('messages after stop are ignored', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  client.send(exotelStrings.start('CAafter'))
  client.send(exotelStrings.stop('CAafter', 'MZCAafter', 2))
  client.send(exotelStrings.media('MZCAafter', 3, 1, 0, pcmFrame(320, 1)))
  t.equal((await client.closed).code, 1000)
  await subscriber.waitForEvent('call.stop', 'CAafter')
  t.equal(subscriber.frames('CAafter').length, 0)
})

t.test('a stop before start closes normally and publishes nothing', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  client.send({ event: 'stop', stop: { reason: 'stopped' } })
  t.same(await client.closed, { code: 1000, reason: 'stream stopped' })
  await gateway.logs.waitFor((line) => line.msg === 'stop before start')
  t.equal(subscriber.published.items.length, 0)
})
