import t, { type Test } from 'tap'
import { TestRedis } from './helpers/redis-server.js'
import { ProviderClient, exotelStrings, pcmFrame, refusedUpgrade, type Closed } from './helpers/exotel.js'
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
      reason: /^no enabled vendor accepts this message \(exotel: invalid start message at \/start\/call_sid: Expected required property; twilio: invalid start message at \/start\/accountSid: Expected required property; telnyx: invalid start message at \/start\/call_session_id: Expected required property\)$/,
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

/** A warn line for a connection closed for passing one of its limits. */
function limitLine (replica: Replica, limit: string, match: (line: Record<string, unknown>) => boolean = () => true): Promise<Record<string, unknown>> {
  return replica.lines.waitFor((line) => line.msg === 'closing connection: limit passed' && line.limit === limit && match(line), `a ${limit} line`)
}

t.test('a connection that has not started START_TIMEOUT_MS after its upgrade is closed with 1008, whatever it sends', async (t) => {
  const prefix = 'deadline:'
  // Keepalive settings are the defaults, whose own sweep would come every 2.5 s.
  const startTimeoutMs = 2000
  const replica = await startReplica(t, { REDIS_URL: redis.url, REDIS_PREFIX: prefix, START_TIMEOUT_MS: String(startTimeoutMs), MAX_CONCURRENT_CALLS: '4' })
  const subscriber = await Subscriber.start(t, redis.url, prefix)
  const good = await goodCall(t, replica, subscriber, 'CAgooddeadline')

  // The measured abuse, in small: connections that never start hold the remaining call slots.
  const stallers = [
    { name: 'connected every 100 ms on the Exotel route', path: '/v1/ingest/exotel', message: { event: 'connected' }, vendor: 'exotel' },
    { name: 'Twilio\'s connected every 100 ms on the Twilio route', path: '/v1/ingest/twilio', message: { event: 'connected', protocol: 'Call', version: '1.0.0' }, vendor: 'twilio' },
    { name: 'silence on /v1/ingest', path: '/v1/ingest', message: null, vendor: 'undetected' }
  ]
  const open = await Promise.all(stallers.map(async (staller) => {
    const client = await ProviderClient.connect(`${replica.wsUrl}${staller.path}`)
    const openedAt = Date.now()
    if (staller.message !== null) {
      const chatter = setInterval(() => client.send(staller.message), 100)
      client.ws.once('close', () => clearInterval(chatter))
    }
    return { ...staller, client, openedAt }
  }))
  t.equal((await refusedUpgrade(`${replica.wsUrl}/v1/ingest`)).status, 503, 'while they hold the slots, a new call gets 503')
  good.frame()

  for (const { name, client, openedAt, vendor, message } of open) {
    const closed = await within(client.closed, startTimeoutMs + 3000, name)
    t.same(closed, { code: 1008, reason: `no start within ${startTimeoutMs} ms` }, `${name}: closed with 1008`)
    const logged = await limitLine(replica, 'start_timeout', (line) => (line.vendor ?? 'undetected') === vendor)
    t.match(logged, { level: 40, close_code: 1008, reason: `no start within ${startTimeoutMs} ms`, bytes: Number }, `${name}: a warn line tells why and what it sent`)
    // When the gateway closed it, by its log line's time (the client sees the close once the connection is dropped,
    // a second later). The client's clock starts after the gateway's, so a few milliseconds early is still on time.
    const afterMs = Number(logged.time) - openedAt
    t.ok(afterMs > startTimeoutMs - 100 && afterMs < startTimeoutMs + 1000, `${name}: closed ${afterMs} ms after the upgrade, within a second of the deadline`)
    if (message === null) t.match(logged, { messages: 0, vendor_candidates: ['exotel', 'twilio'] }, `${name}: nothing, and to which vendors it could have belonged`)
    else t.ok(Number(logged.messages) >= 10, `${name}: its ${String(logged.messages)} messages`)
    good.frame()
  }
  const samples = await scrape(replica.url)
  for (const vendor of ['exotel', 'twilio', 'undetected']) {
    t.equal(total(samples, 'rtaa_connections_limited_total', { vendor, reason: 'start_timeout' }), 1, `counted for ${vendor}`)
  }
  t.equal(total(samples, 'rtaa_input_errors_total'), 0, 'not counted as bad input')

  const next = await ProviderClient.connect(`${replica.wsUrl}/v1/ingest/exotel?sample-rate=8000`)
  next.send(exotelStrings.start('CAnext'))
  await subscriber.waitForEvent('call.start', 'CAnext')
  next.send(exotelStrings.stop('CAnext', 'MZCAnext', 2))
  t.equal((await next.closed).code, 1000, 'once they are gone, a new call is admitted')
  good.frame()
  await good.end()
})

t.test('a start still being claimed when the deadline passes is not closed for it', async (t) => {
  const prefix = 'claimdeadline:'
  const replica = await startReplica(t, { REDIS_URL: redis.url, REDIS_PREFIX: prefix, START_TIMEOUT_MS: '200' })
  const subscriber = await Subscriber.start(t, redis.url, prefix)
  const client = await ProviderClient.connect(`${replica.wsUrl}/v1/ingest/exotel?sample-rate=8000`)
  t.teardown(() => client.ws.terminate())
  // With Redis frozen, the claim is unanswered for a second (then the call goes on unconfirmed): past the deadline.
  redis.pause()
  t.teardown(() => redis.resume())
  client.send(exotelStrings.start('CAclaiming'))
  await replica.lines.waitFor((line) => line.msg === 'call not claimed yet: redis has not answered; claiming it when it does', 'the claim given up waiting for')
  redis.resume()
  const sent = [pcmFrame(1600, 1), pcmFrame(1600, 2)]
  for (const [i, pcm] of sent.entries()) client.send(exotelStrings.media('MZCAclaiming', i + 2, i + 1, i * 100, pcm))
  client.send(exotelStrings.stop('CAclaiming', 'MZCAclaiming', 4))
  t.same(await client.closed, { code: 1000, reason: 'stream stopped' })
  t.match(await subscriber.waitForEvent('call.stop', 'CAclaiming'), { reason: 'callended', frames: 2 })
  t.ok(Buffer.concat(subscriber.frames('CAclaiming').map(({ pcm }) => pcm)).equals(Buffer.concat(sent)), 'its audio, byte for byte')
  t.notOk(replica.lines.items.some((line) => line.limit === 'start_timeout'), 'no start_timeout')
})

/**
 * Connects, sends the opening messages and waits until `ready` (for a start, its call.start), then sends `message`
 * flat out until the gateway closes the connection.
 */
async function flood (url: string, opening: unknown[], ready: () => Promise<unknown>, message: string): Promise<{ closed: Closed, afterMs: number }> {
  const client = await ProviderClient.connect(url)
  for (const first of opening) client.send(first)
  await ready()
  const began = performance.now()
  const { ws } = client
  // As fast as the socket takes them, 64 KiB at a time so this process (which measures /health too) is never busy
  // for long: the gateway reads while this writes, so a plain loop would never end. With a MiB waiting, the next
  // batch waits until the last message is written.
  const pump = (): void => {
    if (ws.readyState !== ws.OPEN) return
    for (let bytes = 0; bytes < 64 * 1024 && ws.bufferedAmount < 1024 * 1024; bytes += message.length) ws.send(message)
    if (ws.bufferedAmount < 1024 * 1024) setImmediate(pump)
    else ws.send(message, () => setImmediate(pump))
  }
  pump()
  const closed = await within(client.closed, 10_000, 'a flood')
  return { closed, afterMs: performance.now() - began }
}

t.test('a connection sending faster than its inbound limits is closed with 1008, and the gateway stays responsive', async (t) => {
  const prefix = 'flood:'
  // The default limits: audio at 4 times real time, 250 messages a second, each beyond a 5 s burst.
  const replica = await startReplica(t, { REDIS_URL: redis.url, REDIS_PREFIX: prefix, LOG_LEVEL: 'info' })
  const subscriber = await Subscriber.start(t, redis.url, prefix)
  const good = await goodCall(t, replica, subscriber, 'CAgoodflood')
  // A vendor catching up after a network hiccup: 5 s of audio at once is within the burst.
  for (let i = 0; i < 50; i++) good.frame()

  const url = `${replica.wsUrl}/v1/ingest/exotel?sample-rate=8000`
  // 48,000 bytes of PCM, 3 s at 8 kHz, in a message just under MAX_MESSAGE_BYTES (64 KiB): the measured flood.
  const big = (callSid: string): string => JSON.stringify(exotelStrings.media(`MZ${callSid}`, 2, 1, 0, pcmFrame(48_000, 1)))
  // One sample per message: little audio, many messages.
  const tiny = (callSid: string): string => JSON.stringify(exotelStrings.media(`MZ${callSid}`, 2, 1, 0, pcmFrame(2, 1)))
  const connected = (): string => JSON.stringify(exotelStrings.connected())
  const floods = [
    ...[1, 2, 3, 4].map((n) => ({ name: `audio flood ${n}`, limit: 'audio_rate', starts: true, message: big })),
    { name: 'message flood before start', limit: 'message_rate', starts: false, message: connected },
    { name: 'message flood after start', limit: 'message_rate', starts: true, message: tiny }
  ]
  const reasons: Record<string, string> = { audio_rate: 'audio faster than 4 times real time', message_rate: 'more than 250 messages a second' }
  const rounds = 3

  // /health is asked again and again while every flood reconnects as soon as it is closed, three times over.
  const latencies: number[] = []
  const floodsDone = new AbortController()
  const probing = (async () => {
    while (!floodsDone.signal.aborted) {
      const began = performance.now()
      const response = await fetch(`${replica.url}/health`)
      await response.text()
      latencies.push(performance.now() - began)
      if (response.status !== 200) throw new Error(`/health answered ${response.status}`)
    }
  })()
  const closes = await Promise.all(floods.map(async ({ name, limit, starts, message }, index) => {
    const outcomes: Array<{ name: string, limit: string, callSid: string | null, closed: Closed, afterMs: number }> = []
    for (let round = 0; round < rounds; round++) {
      const callSid = `CAflood${index}x${round}`
      const [opening, ready] = starts ? [[exotelStrings.start(callSid)], () => subscriber.waitForEvent('call.start', callSid)] : [[], async () => null]
      outcomes.push({ name: `${name}, round ${round + 1}`, limit, callSid: starts ? callSid : null, ...await flood(url, opening, ready, message(callSid)) })
      good.frame()
    }
    return outcomes
  })).finally(() => floodsDone.abort())
  await probing

  for (const { name, limit, callSid, closed, afterMs } of closes.flat()) {
    t.same(closed, { code: 1008, reason: reasons[limit] }, `${name}: closed with 1008`)
    // The close frame comes at once; the connection is dropped a second later (the client sees the close then).
    t.ok(afterMs < 3000, `${name}: closed ${Math.round(afterMs)} ms into the flood`)
    if (callSid === null) continue
    const logged = await limitLine(replica, limit, (line) => line.interaction_id === callSid)
    t.match(logged, { level: 40, close_code: 1008, reason: reasons[limit], vendor: 'exotel', bytes: Number }, `${name}: a warn line names the call and the limit`)
    // Audio: 20 s of it at 8 kHz is caught at the seventh message of 3 s. Messages: 1250, and the refill meanwhile.
    const caughtBy = limit === 'audio_rate' ? 12 : 2500
    t.ok(Number(logged.messages) <= caughtBy, `${name}: caught after ${String(logged.messages)} messages`)
    t.match(await subscriber.waitForEvent('call.stop', callSid), { reason: 'protocol_error' }, `${name}: its call ends`)
  }
  t.ok(latencies.length >= 5, `/health answered ${latencies.length} times during the floods`)
  t.ok(Math.max(...latencies) < 1000, `/health answered within ${Math.round(Math.max(...latencies))} ms at worst (a bound on starvation)`)

  const samples = await scrape(replica.url)
  t.equal(total(samples, 'rtaa_connections_limited_total', { vendor: 'exotel', reason: 'audio_rate' }), 4 * rounds, 'audio floods counted')
  t.equal(total(samples, 'rtaa_connections_limited_total', { vendor: 'exotel', reason: 'message_rate' }), 2 * rounds, 'message floods counted')
  t.equal(total(samples, 'rtaa_input_errors_total'), 0, 'not counted as bad input')
  const beforeStart = replica.lines.items.filter((line) => line.limit === 'message_rate' && line.interaction_id === undefined)
  t.equal(beforeStart.length, rounds, 'the message limit holds before a start too')
  await good.end()
})
