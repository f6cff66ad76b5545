import t from 'tap'
import WebSocket from 'ws'
import { TestRedis } from './helpers/redis-server.js'
import { startListenedGateway } from './helpers/gateway.js'
import { ProviderClient, exotelStrings, pcmFrame } from './helpers/exotel.js'
import { fuzzConnections, prng } from './helpers/fuzz-messages.js'

/*
 * Thousands of malformed messages, from a seeded generator so a failure can be replayed, while one good call
 * streams alongside. The process must not crash and the good call's audio must arrive intact.
 */
const SEED = 20261125
const MESSAGES = 10_000
const CONCURRENCY = 16
const MAX_MESSAGE_BYTES = 8192

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

  const next = fuzzConnections(prng(SEED), MAX_MESSAGE_BYTES)
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
