import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import t from 'tap'
import type { CallStartEvent } from '../src/bus/call-events.js'
import { readWav } from '../src/audio/wav.js'
import { TestRedis } from './helpers/redis-server.js'
import { Subscriber } from './helpers/subscriber.js'
import { isOneLine, startRecorder, startToolsGateway, tool } from './helpers/tools.js'

// rtaa-sim against a gateway process: the call's rate comes from the URL, and a call cut short is a failure.

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

t.test('rtaa-sim streams at the rate --url names; the recording has its rate and length', async (t) => {
  const dir = t.testdir()
  const server = await startToolsGateway(t, redis.url)
  const record = await startRecorder(dir, redis.url, server.prefix)
  const sim = await tool('rtaa-sim', ['--url', `${server.wsUrl}/v1/ingest?sample-rate=16000`, '--duration', '0.5', '--call-prefix', 'urlrate'], dir).done
  t.equal(sim.code, 0, sim.stderr)
  t.match(JSON.parse(sim.stdout), { sample_rate: 16000, completed: 1 })
  t.equal((await record.done).code, 0)
  const recorded = readWav(readFileSync(join(dir, 'recordings', 'ACsimulator', 'urlrate-1.wav')))
  t.equal(recorded.sampleRate, 16000)
  t.equal(recorded.pcm.length, 0.5 * 16000 * 2, 'half a second at 16 kHz, not 8 kHz audio taken as 16 kHz')
  t.match(JSON.parse(readFileSync(join(dir, 'recordings', 'ACsimulator', 'urlrate-1.json'), 'utf8')), { sample_rate: 16000, duration_ms: 500, gaps: 0 })
})

t.test('rtaa-sim refuses a --sample-rate that contradicts --url, and a rate the gateway would refuse, in one line', async (t) => {
  const dir = t.testdir()
  const contradiction = await tool('rtaa-sim', ['--url', 'ws://127.0.0.1:1/v1/ingest?sample-rate=16000', '--sample-rate', '8000'], dir).done
  t.equal(contradiction.code, 2)
  t.match(contradiction.stderr, /^rtaa-sim: --sample-rate 8000 contradicts sample-rate=16000 in --url/)
  t.ok(isOneLine(contradiction.stderr), contradiction.stderr)
  const agreeing = await tool('rtaa-sim', ['--url', 'ws://127.0.0.1:1/v1/ingest?sample_rate=16000', '--sample-rate', '16000', '--duration', '0.1'], dir).done
  t.equal(agreeing.code, 1, 'the same rate twice is fine (the call then fails: nothing listens on port 1)')
  const bad = await tool('rtaa-sim', ['--url', 'ws://127.0.0.1:1/v1/ingest?sample-rate=16000.0'], dir).done
  t.equal(bad.code, 2)
  t.match(bad.stderr, /^rtaa-sim: --url: sample-rate must be one of 8000, 16000, 24000/)
})

t.test('rtaa-sim exits 1 when the gateway closes the call before it was sent whole', async (t) => {
  const dir = t.testdir()
  // 100 ms of 16 kHz audio is a 4.3 kB message: past MAX_MESSAGE_BYTES, the gateway closes with 1009.
  const small = await startToolsGateway(t, redis.url, { MAX_MESSAGE_BYTES: '1024' })
  const cut = await tool('rtaa-sim', ['--url', `${small.wsUrl}/v1/ingest?sample-rate=16000`, '--duration', '1', '--call-prefix', 'cut'], dir).done
  t.equal(cut.code, 1)
  t.match(JSON.parse(cut.stdout), { failed: 1, results: [{ ok: false, close_code: 1009, error: /closed the call \(1009.*\) after \d of 10 media messages, before the stop/ }] })

  // A normal close code is not enough: a worker's hang-up ends the call with 1000 before the stop was sent.
  const server = await startToolsGateway(t, redis.url)
  const subscriber = await Subscriber.start(t, redis.url, server.prefix)
  const sim = tool('rtaa-sim', ['--url', `${server.wsUrl}/v1/ingest`, '--duration', '5', '--call-prefix', 'hung'], dir).done
  const { playback_channel: channel } = await subscriber.waitForEvent('call.start', 'hung-1') as CallStartEvent
  const worker = new Redis(redis.url)
  t.teardown(() => worker.disconnect())
  await worker.publish(channel, JSON.stringify({ type: 'hangup' }))
  const hung = await sim
  t.equal(hung.code, 1, 'without --voicebot, a hang-up cuts the call short')
  t.match(JSON.parse(hung.stdout), { results: [{ ok: false, close_code: 1000, close_reason: 'hangup', error: /before the stop/ }] })
})
