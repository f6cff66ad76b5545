import t from 'tap'
import WebSocket from 'ws'
import { TestRedis } from './helpers/redis-server.js'
import { startListenedGateway } from './helpers/gateway.js'
import { ProviderClient, exotelStrings, pcmFrame } from './helpers/exotel.js'

/*
 * Thousands of malformed messages, from a seeded generator so a failure can be replayed, while one good call
 * streams alongside. The process must not crash and the good call's audio must arrive intact.
 */
const SEED = 20261125
const MESSAGES = 10_000
const CONCURRENCY = 16
const MAX_MESSAGE_BYTES = 8192

function prng (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let x = Math.imul(state ^ (state >>> 15), 1 | state)
    x ^= x + Math.imul(x ^ (x >>> 7), 61 | x)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

type Frame = { data: string | Buffer, binary: boolean }

function generator (random: () => number) {
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]
  const int = (max: number): number => Math.floor(random() * max)
  const text = (length: number): string => Array.from({ length }, () => String.fromCharCode(32 + int(95))).join('')
  const value = (depth: number): unknown => {
    switch (int(depth > 2 ? 5 : 8)) {
      case 0: return null
      case 1: return random() < 0.5
      case 2: return random() * 1e6 - 5e5
      case 3: return text(int(20))
      case 4: return int(100)
      case 5: return Array.from({ length: int(4) }, () => value(depth + 1))
      default: return Object.fromEntries(Array.from({ length: int(5) }, () => [pick(['event', 'start', 'media', 'payload', 'stream_sid', 'call_sid', text(6)]), value(depth + 1)]))
    }
  }
  const callSid = (): string => `CAfuzz${int(1e9)}`
  const json = (message: unknown): Frame => ({ data: JSON.stringify(message), binary: false })

  const malformed: Array<() => Frame> = [
    () => json(value(0)),
    () => json({ event: pick(['start', 'media', 'dtmf', 'mark', 'stop', 'connected']), ...(value(1) as object) }),
    () => json({ event: 'media', sequence_number: value(2), media: { chunk: value(2), timestamp: value(2), payload: value(2) } }),
    () => json({ event: 'start', start: { call_sid: value(2), account_sid: value(2), custom_parameters: value(2), media_format: value(2) } }),
    () => json({ event: 'media', media: { payload: Buffer.from(text(30)).toString('base64').slice(0, 1 + int(38)) } }),
    () => json({ event: 'media', media: { payload: Buffer.alloc(1 + 2 * int(200)).toString('base64') } }),
    () => json({ event: 'dtmf', dtmf: { digit: value(2), duration: value(2) } }),
    () => json({ event: 'mark', mark: value(1) }),
    () => ({ data: JSON.stringify(value(0)).slice(0, int(40)), binary: false }),
    () => ({ data: Buffer.from(Array.from({ length: 1 + int(300) }, () => int(256))), binary: true }),
    () => ({ data: Buffer.from([0xc3, 0x28, 0xa0, 0xa1, int(256)]), binary: false }), // invalid UTF-8 in a text frame
    () => json({ event: 'media', media: { payload: 'A'.repeat(MAX_MESSAGE_BYTES + int(5000)) } }),
    () => ({ data: text(int(200)), binary: false })
  ]
  const outOfOrder: Array<() => Frame[]> = [
    () => [json(exotelStrings.media('MZfuzz', 2, 1, 0, pcmFrame(320, 1)))],
    () => { const sid = callSid(); return [json(exotelStrings.start(sid)), json(exotelStrings.start(sid))] },
    () => { const sid = callSid(); return [json(exotelStrings.stop(sid, 'MZ', 1)), json(exotelStrings.media('MZ', 2, 1, 0, pcmFrame(320, 1)))] },
    () => [json({ event: 'connected' }), json(exotelStrings.dtmf('MZ', 2, '5'))]
  ]
  /** One connection's worth: sometimes a valid start first, so later garbage reaches a live call. */
  return (): Frame[] => {
    const frames: Frame[] = random() < 0.3 ? [json(exotelStrings.start(callSid()))] : []
    if (random() < 0.2) return [...frames, ...pick(outOfOrder)()]
    for (let i = 1 + int(6); i > 0; i--) frames.push(pick(malformed)())
    return frames
  }
}

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

t.test(`${MESSAGES} malformed messages do not crash the process or disturb a good call`, async (t) => {
  // The good call sends a frame per fuzz connection, faster than real time and than the message limit on a quick
  // machine: the inbound limits are not what is under test.
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES), LOG_LEVEL: 'info', INBOUND_MAX_AUDIO_SPEED: '1000', INBOUND_MAX_MESSAGES_PER_S: '1000000' })
  const good = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  good.send(exotelStrings.start('CAgoodfuzz'))
  let goodFrames = 0
  const sendGood = (): void => { good.send(exotelStrings.media('MZCAgoodfuzz', goodFrames + 2, goodFrames + 1, goodFrames * 20, pcmFrame(320, goodFrames))); goodFrames++ }

  const next = generator(prng(SEED))
  let sent = 0
  const closes = new Map<number, number>()
  const worker = async (): Promise<void> => {
    while (sent < MESSAGES) {
      const frames = next()
      const ws = new WebSocket(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`, { perMessageDeflate: false })
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)))
      ws.on('error', () => {})
      await new Promise((resolve) => ws.once('open', resolve))
      for (const frame of frames) {
        if (ws.readyState !== ws.OPEN) break
        ws.send(frame.data, { binary: frame.binary })
        sent++
      }
      sendGood()
      // A stop, not a close from here: the gateway answers every stream, with its own close code.
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(exotelStrings.stop('CAfuzzend', 'MZfuzzend', 99)))
      const code = await closed
      closes.set(code, (closes.get(code) ?? 0) + 1)
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  t.ok(sent >= MESSAGES, `${sent} malformed messages sent`)
  t.ok([1007, 1008, 1009, 1003].every((code) => (closes.get(code) ?? 0) > 0), `closed with every bad-input code: ${JSON.stringify(Object.fromEntries(closes))}`)

  good.send(exotelStrings.stop('CAgoodfuzz', 'MZCAgoodfuzz', goodFrames + 2))
  t.equal((await good.closed).code, 1000, 'the good call ends normally')
  t.match(await subscriber.waitForEvent('call.stop', 'CAgoodfuzz'), { reason: 'callended', frames: goodFrames, frames_lost: 0, gaps: 0 })
  const frames = subscriber.frames('CAgoodfuzz')
  t.equal(frames.length, goodFrames, 'every frame of the good call is on Redis')
  t.ok(frames.every((frame, i) => frame.header.seq === i + 1 && frame.pcm.equals(pcmFrame(320, i))), 'in order, byte for byte')
  t.equal((await fetch(`${gateway.url}/health`)).status, 200, 'the process is alive and serving')
  t.same(gateway.app.liveCalls.snapshot().filter((call) => call.state === 'live'), [], 'no call is left behind')
})
