import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import t from 'tap'
import type { CallStartEvent } from '../src/bus/call-events.js'
import { decodeMulaw, encodeMulaw } from '../src/audio/mulaw.js'
import { readWav, wavHeader, writeWav } from '../src/audio/wav.js'
import { TestRedis } from './helpers/redis-server.js'
import { startGateway, waitReady } from './helpers/gateway.js'
import { pcmFrame } from './helpers/exotel.js'
import { Subscriber } from './helpers/subscriber.js'
import { tool } from './helpers/tools.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

t.test('round trip: rtaa-sim → gateway → rtaa-record holds exactly the simulated PCM, with no gaps', async (t) => {
  const dir = t.testdir()
  const gateway = await startGateway(t, redis.url)
  await waitReady(gateway)
  const env = { REDIS_URL: redis.url, REDIS_PREFIX: gateway.prefix }
  const pcm = Buffer.concat(Array.from({ length: 12 }, (_, i) => pcmFrame(3200, i))) // 1.2 s at 16 kHz
  writeFileSync(join(dir, 'input.wav'), writeWav(pcm, 16000))

  const recorder = tool('rtaa-record', ['--calls', '1', '--out', 'recordings'], dir, env)
  await recorder.stderrHas('ready: subscribed')
  const sim = await tool('rtaa-sim', ['--url', `${gateway.wsUrl}/v1/ingest`, '--sample-rate', '16000', '--chunk-ms', '20', '--wav', 'input.wav', '--dtmf', '4', '--call-prefix', 'roundtrip'], dir).done
  t.equal(sim.code, 0, sim.stderr)
  t.match(JSON.parse(sim.stdout), { vendor: 'exotel', calls: 1, completed: 1, failed: 0, frames_sent: 60 })
  t.equal((await recorder.done).code, 0)

  const recorded = readWav(readFileSync(join(dir, 'recordings', 'ACsimulator', 'roundtrip-1.wav')))
  t.equal(recorded.sampleRate, 16000)
  t.ok(recorded.pcm.equals(pcm), 'the recording is the simulated audio, byte for byte')
  const sidecar = JSON.parse(readFileSync(join(dir, 'recordings', 'ACsimulator', 'roundtrip-1.json'), 'utf8'))
  t.match(sidecar, { interaction_id: 'roundtrip-1', tenant_id: 'ACsimulator', vendor: 'exotel', sample_rate: 16000, frames: 60, bytes: pcm.length, duration_ms: 1200, gaps: 0, reason: 'callended' })
  t.same(sidecar.events.map((event: { type: string }) => event.type), ['call.start', 'call.dtmf', 'call.stop'])
})

t.test('a two-track call: rtaa-sim --tracks both → gateway → rtaa-record keeps each leg in its own WAV, byte for byte', async (t) => {
  const dir = t.testdir()
  const gateway = await startGateway(t, redis.url)
  await waitReady(gateway)
  const env = { REDIS_URL: redis.url, REDIS_PREFIX: gateway.prefix }
  // A stereo WAV: the caller on the left, the agent on the right; Twilio streams μ-law, so compare after a round trip.
  const left = Buffer.concat(Array.from({ length: 5 }, (_, i) => pcmFrame(320, i)))
  const right = Buffer.concat(Array.from({ length: 5 }, (_, i) => pcmFrame(320, 100 + i)))
  const stereo = Buffer.alloc(left.length * 2)
  for (let i = 0; i < left.length / 2; i++) {
    stereo.writeInt16LE(left.readInt16LE(i * 2), i * 4)
    stereo.writeInt16LE(right.readInt16LE(i * 2), i * 4 + 2)
  }
  writeFileSync(join(dir, 'stereo.wav'), Buffer.concat([wavHeader(8000, stereo.length, 2), stereo]))

  const recorder = tool('rtaa-record', ['--calls', '1', '--out', 'recordings'], dir, env)
  await recorder.stderrHas('ready: subscribed')
  const sim = await tool('rtaa-sim', ['--vendor', 'twilio', '--tracks', 'both', '--url', `${gateway.wsUrl}/v1/ingest`, '--wav', 'stereo.wav', '--call-prefix', 'CAlegs'], dir).done
  t.equal(sim.code, 0, sim.stderr)
  t.equal((await recorder.done).code, 0)
  const folder = join(dir, 'recordings', 'ACsimulator')
  t.ok(readWav(readFileSync(join(folder, 'CAlegs-1.wav'))).pcm.equals(decodeMulaw(encodeMulaw(left))), 'the caller\'s leg')
  t.ok(readWav(readFileSync(join(folder, 'CAlegs-1.outbound.wav'))).pcm.equals(decodeMulaw(encodeMulaw(right))), 'the agent\'s leg')
  t.match(JSON.parse(readFileSync(join(folder, 'CAlegs-1.outbound.json'), 'utf8')), { track: 'outbound', frames: 5, gaps: 0, reason: 'stopped' })
  t.match(JSON.parse(readFileSync(join(folder, 'CAlegs-1.json'), 'utf8')), { track: 'inbound', frames: 5, gaps: 0 })
})

t.test('--calls 20 gives 20 recordings', async (t) => {
  const dir = t.testdir()
  const gateway = await startGateway(t, redis.url)
  await waitReady(gateway)
  const env = { REDIS_URL: redis.url, REDIS_PREFIX: gateway.prefix }
  const recorder = tool('rtaa-record', ['--calls', '20', '--out', 'out'], dir, env)
  await recorder.stderrHas('ready: subscribed')
  const sim = await tool('rtaa-sim', ['--url', `${gateway.wsUrl}/v1/ingest`, '--calls', '20', '--ramp-ms', '10', '--duration', '0.6', '--call-prefix', 'many'], dir).done
  t.equal(sim.code, 0, sim.stderr)
  t.match(JSON.parse(sim.stdout), { calls: 20, completed: 20 })
  t.equal((await recorder.done).code, 0)
  const wavs = readdirSync(join(dir, 'out', 'ACsimulator')).filter((file) => file.endsWith('.wav'))
  t.equal(wavs.length, 20)
  for (const file of wavs) t.equal(readWav(readFileSync(join(dir, 'out', 'ACsimulator', file))).pcm.length, 0.6 * 8000 * 2, `${file} holds the whole call`)
})

t.test('a token from rtaa-token is accepted; an expired one is refused', async (t) => {
  const dir = t.testdir()
  const secret = 'tools-test-secret-of-at-least-32-bytes'
  const gateway = await startGateway(t, redis.url, { SUPPORT_NATIVE: 'true', JWT_SECRET: secret })
  await waitReady(gateway)
  const mint = async (args: string[]): Promise<string> => {
    const run = await tool('rtaa-token', ['--tenant', 'acme', ...args], dir, { JWT_SECRET: secret }).done
    t.equal(run.code, 0, run.stderr)
    return run.stdout.trim()
  }
  const good = await tool('rtaa-sim', ['--url', `${gateway.wsUrl}/v1/ingest`, '--vendor', 'native', '--token', await mint([]), '--duration', '0.3', '--call-prefix', 'tok'], dir).done
  t.equal(good.code, 0, good.stderr)
  t.match(JSON.parse(good.stdout), { vendor: 'native', completed: 1 })
  t.match(gateway.logs.items.find((line) => line.msg === 'call started'), { interaction_id: 'tok-1', tenant_id: 'acme', vendor: 'native' })

  const expired = await tool('rtaa-sim', ['--url', `${gateway.wsUrl}/v1/ingest`, '--vendor', 'native', '--token', await mint(['--expires-in=-60']), '--duration', '0.3'], dir).done
  t.equal(expired.code, 1)
  t.match(JSON.parse(expired.stdout), { failed: 1, results: [{ ok: false, error: 'upgrade refused: HTTP 401' }] })
})

t.test('bad arguments give a usage message and exit status 2', async (t) => {
  const dir = t.testdir()
  const cases: Array<[string, string[], RegExp]> = [
    ['rtaa-sim', ['--vendor', 'skype'], /--vendor must be exotel, twilio, native, plivo, telnyx, vonage or audiohook/],
    ['rtaa-sim', ['--sample-rate', '11025'], /--sample-rate for exotel must be one of 8000, 16000, 24000/],
    ['rtaa-sim', ['--chunk-ms', '7'], /--chunk-ms must be 20 or 100/],
    ['rtaa-sim', ['--wav', 'missing.wav'], /--wav missing.wav/],
    ['rtaa-sim', ['--nonsense'], /Unknown option '--nonsense'/],
    ['rtaa-record', ['--calls', 'zero'], /--calls must be an integer/],
    ['rtaa-token', [], /--tenant is required/]
  ]
  for (const [name, args, message] of cases) {
    const run = await tool(name, args, dir).done
    t.equal(run.code, 2, `${name} ${args.join(' ')}`)
    t.match(run.stderr, message)
    t.match(run.stderr, new RegExp(`Usage: ${name}`))
  }
})

t.test('--voicebot answers marks like Exotel and saves the audio played back', async (t) => {
  const dir = t.testdir()
  const gateway = await startGateway(t, redis.url)
  await waitReady(gateway)
  const subscriber = await Subscriber.start(t, redis.url, gateway.prefix)
  const sim = tool('rtaa-sim', ['--url', `${gateway.wsUrl}/v1/ingest`, '--voicebot', '--duration', '1.5', '--call-prefix', 'bot', '--playback-dir', 'played'], dir).done
  const { playback_channel: channel } = await subscriber.waitForEvent('call.start', 'bot-1') as CallStartEvent
  const worker = new Redis(redis.url)
  t.teardown(() => worker.disconnect())
  const header = Buffer.from(JSON.stringify({ sample_rate: 8000 }))
  const length = Buffer.alloc(4)
  length.writeUInt32BE(header.length)
  const speech = pcmFrame(8000, 3) // 0.5 s at 8 kHz
  await worker.publish(channel, Buffer.concat([length, header, speech]))
  await worker.publish(channel, JSON.stringify({ type: 'mark', name: 'said-it' }))

  const run = await sim
  t.equal(run.code, 0, run.stderr)
  t.match(await subscriber.waitForEvent('call.mark', 'bot-1'), { name: 'said-it', cleared: false }, 'the mark came back through the simulator')
  const played = readWav(readFileSync(join(dir, 'played', 'bot-1.wav')))
  t.equal(played.sampleRate, 8000)
  t.ok(played.pcm.subarray(0, speech.length).equals(speech), 'the saved playback starts with what the worker said')
  t.ok(played.pcm.subarray(speech.length).every((byte) => byte === 0), 'then only the padding of the last chunk')
})
