import t, { type Test } from 'tap'
import { TestRedis } from './helpers/redis-server.js'
import { ProviderClient, exotelStrings, pcmFrame, type Closed } from './helpers/exotel.js'
import { scrape, total } from './helpers/metrics.js'
import { startReplica, type Replica } from './helpers/server-process.js'
import { Subscriber } from './helpers/subscriber.js'

/*
 * Issue 13, "Hold under abuse and faults": each abuse against a gateway replica in a process of its own, on a real
 * redis-server, with a good call beside it whose audio must reach Redis byte for byte.
 */

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

/** Rejects when the promise has not settled within `ms`: how long a connection may stay open is what is tested. */
async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: still waiting after ${ms} ms`)), ms) })
  try {
    return await Promise.race([promise, late])
  } finally {
    clearTimeout(timer)
  }
}

/** A close frame's reason: RFC 6455 allows 123 bytes. */
function closeReason (reason: string): string {
  return reason.length <= 123 ? reason : `${reason.slice(0, 120)}...`
}

interface GoodCall {
  /** Sends one 100 ms frame at 8 kHz. */
  frame: () => void
  /** Stops the call and checks that every frame reached Redis, in order and byte for byte. */
  end: () => Promise<void>
}

/** A good Exotel call beside the abuse. */
async function goodCall (t: Test, replica: Replica, subscriber: Subscriber, callSid: string): Promise<GoodCall> {
  const client = await ProviderClient.connect(`${replica.wsUrl}/v1/ingest/exotel?sample-rate=8000`)
  t.teardown(() => client.ws.terminate())
  client.send(exotelStrings.start(callSid))
  await subscriber.waitForEvent('call.start', callSid)
  const sent: Buffer[] = []
  return {
    frame () {
      const pcm = pcmFrame(1600, sent.length)
      client.send(exotelStrings.media(`MZ${callSid}`, sent.length + 2, sent.length + 1, sent.length * 100, pcm))
      sent.push(pcm)
    },
    async end () {
      client.send(exotelStrings.stop(callSid, `MZ${callSid}`, sent.length + 2))
      t.same(await client.closed, { code: 1000, reason: 'stream stopped' }, 'the good call ends normally')
      t.match(await subscriber.waitForEvent('call.stop', callSid), { reason: 'callended', frames: sent.length, frames_lost: 0 }, 'the good call lost nothing')
      const frames = subscriber.frames(callSid)
      t.same(frames.map(({ header }) => header.seq), sent.map((_pcm, i) => i + 1), 'its frames, in order')
      t.ok(Buffer.concat(frames.map(({ pcm }) => pcm)).equals(Buffer.concat(sent)), 'its audio, byte for byte')
    }
  }
}

t.test('detection refuses at once a stream that no enabled vendor can accept', async (t) => {
  const prefix = 'detect:'
  const replica = await startReplica(t, { REDIS_URL: redis.url, REDIS_PREFIX: prefix })
  const subscriber = await Subscriber.start(t, redis.url, prefix)
  const good = await goodCall(t, replica, subscriber, 'CAgooddetect')
  const media = { event: 'media', media: { payload: pcmFrame(320, 1).toString('base64') } }
  const cases: Array<{ name: string, messages: unknown[], code: number, reason: RegExp, metric: string }> = [
    // The measured case: both vendors judged this start "maybe", and the stream was held until it went idle.
    { name: 'a start with no vendor\'s fields, then media', messages: [{ event: 'start', hello: 'world' }, media], code: 1007, reason: /^invalid start message at \/start: Expected required property$/, metric: 'invalid_payload' },
    // The vendors give different reasons: the log line has each (the close frame's reason is cut to 123 bytes).
    {
      name: 'connected, then a start with an empty start object',
      messages: [{ event: 'connected' }, { event: 'start', start: {} }],
      code: 1007,
      reason: /^no enabled vendor accepts this message \(exotel: invalid start message at \/start\/call_sid: Expected required property; twilio: invalid start message at \/start\/accountSid: Expected required property\)$/,
      metric: 'invalid_payload'
    },
    // Both vendors' schemas take it, and both would refuse it before a start.
    { name: 'media before any start', messages: [media], code: 1008, reason: /^media before start$/, metric: 'policy_violation' },
    { name: 'a key press before any start', messages: [{ event: 'connected' }, { event: 'dtmf', dtmf: { digit: '5' } }], code: 1008, reason: /^dtmf before start$/, metric: 'policy_violation' }
  ]
  for (const { name, messages, code, reason, metric } of cases) {
    const client = await ProviderClient.connect(`${replica.wsUrl}/v1/ingest`)
    for (const message of messages) client.send(message)
    good.frame()
    const closed: Closed = await within(client.closed, 2000, name)
    t.equal(closed.code, code, `${name}: close code`)
    const logged = await replica.lines.waitFor((line) => line.msg === 'closing connection: bad input' && reason.test(String(line.reason)), `${name}: log line`)
    t.match(logged, { level: 40, close_code: code, vendor_candidates: ['exotel', 'twilio'] }, `${name}: a log line names the reason and the candidates`)
    t.equal(closed.reason, closeReason(String(logged.reason)), `${name}: the close frame has the reason, cut to fit`)
    t.equal(total(await scrape(replica.url), 'rtaa_input_errors_total', { vendor: 'undetected', reason: metric }) > 0, true, `${name}: counted`)
  }
  t.equal(total(await scrape(replica.url), 'rtaa_input_errors_total', { vendor: 'undetected' }), cases.length, 'each stream counted once')
  await good.end()
})
