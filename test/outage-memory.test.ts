import t, { type Test } from 'tap'
import { ProviderClient, exotelStrings, pcmFrame } from './helpers/exotel.js'
import { scrape, total } from './helpers/metrics.js'
import { TestRedis } from './helpers/redis-server.js'
import { startReplica } from './helpers/server-process.js'
import { Subscriber } from './helpers/subscriber.js'

const BOUND = 32 * 1024 * 1024
const SMALL_BOUND = 1024 * 1024
const CALLS = 20
/** 20 ms at 8 kHz: the smallest frames vendors send, so what each waiting frame costs besides its bytes weighs most. */
const FRAME_BYTES = 320
const FRAMES_PER_ROUND = 200
/** Three times the bound goes in: the buffer fills, then drops its oldest frames for the rest. */
const ROUNDS = Math.ceil((3 * BOUND) / (CALLS * FRAMES_PER_ROUND * (FRAME_BYTES + 200)))

interface Run {
  /** RSS once the calls are up and Redis is gone, before any frame: the process's own, with nothing buffered. */
  startRss: number
  peakRss: number
  bufferPeak: number
  dropped: number
}

/**
 * One gateway process under the same load, its Redis gone once its 20 calls have started: they stream frames as
 * fast as it takes them, so everything after waits in a buffer of `bound` or is dropped from it.
 */
async function run (t: Test, bound: number): Promise<Run> {
  const redis = await TestRedis.start()
  t.teardown(() => redis.stop())
  const prefix = `memory${process.pid}-${bound}:`
  const gateway = await startReplica(t, {
    REDIS_URL: redis.url,
    REDIS_PREFIX: prefix,
    LOG_LEVEL: 'info',
    REDIS_BUFFER_MAX_BYTES: String(bound),
    // The frames go in faster than real time to fill the buffer; the inbound limits are not under test here.
    INBOUND_MAX_AUDIO_SPEED: '1000',
    INBOUND_MAX_MESSAGES_PER_S: '1000000'
  })
  const subscriber = await Subscriber.start(t, redis.url, prefix)
  const calls = await Promise.all(Array.from({ length: CALLS }, async (_, call) => {
    const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
    client.send(exotelStrings.start(`CAmem${call}`))
    return client
  }))
  for (let call = 0; call < CALLS; call++) await subscriber.waitForEvent('call.start', `CAmem${call}`)
  await redis.stop()
  await gateway.lines.waitFor((line) => line.msg === 'redis connection lost, reconnecting')
  const startRss = total(await scrape(gateway.url), 'process_resident_memory_bytes')

  const payloads = Array.from({ length: 64 }, (_, i) => pcmFrame(FRAME_BYTES, i).toString('base64'))
  const result: Run = { startRss, peakRss: 0, bufferPeak: 0, dropped: 0 }
  let sent = 0
  for (let round = 0; round < ROUNDS; round++) {
    for (let call = 0; call < CALLS; call++) {
      for (let i = 0; i < FRAMES_PER_ROUND; i++) {
        const seq = round * FRAMES_PER_ROUND + i + 2
        calls[call].ws.send(`{"event":"media","sequence_number":"${seq}","stream_sid":"MZCAmem${call}","media":{"chunk":"${seq - 1}","timestamp":"${(seq - 2) * 20}","payload":"${payloads[seq % 64]}"}}`)
      }
    }
    sent += CALLS * FRAMES_PER_ROUND
    // Each scrape is a round trip to the gateway: the loop waits on its answers until it has taken every frame in.
    for (;;) {
      const samples = await scrape(gateway.url)
      result.peakRss = Math.max(result.peakRss, total(samples, 'process_resident_memory_bytes'))
      result.bufferPeak = Math.max(result.bufferPeak, total(samples, 'rtaa_redis_buffer_bytes'))
      result.dropped = total(samples, 'rtaa_frames_dropped_total', { reason: 'redis_buffer_full' })
      if (total(samples, 'rtaa_inbound_frames_total') >= sent) break
    }
  }
  return result
}

t.test('a full outage buffer costs at most 1.5 times what REDIS_BUFFER_MAX_BYTES grants it', async (t) => {
  // The same outage and load with a buffer of 1 MiB and one of 32 MiB: the difference in how far each process's RSS
  // grew is what the 31 MiB cost. Grew, not peaked: two processes start several MiB apart (136-151 MiB over 40 runs)
  // before anything is buffered, which moved the ratio by 0.3 either way.
  const small = await run(t, SMALL_BOUND)
  const large = await run(t, BOUND)
  for (const [name, result, bound] of [['small', small, SMALL_BOUND], ['large', large, BOUND]] as const) {
    t.ok(result.dropped > 0, `the ${name} buffer overflowed: it was full`)
    t.ok(result.bufferPeak <= bound, `what waits stays within the ${name} bound: ${result.bufferPeak}`)
  }
  const mib = (bytes: number): number => Math.round(bytes / 1048576)
  const cost = ((large.peakRss - large.startRss) - (small.peakRss - small.startRss)) / (BOUND - SMALL_BOUND)
  t.comment(`RSS ${mib(small.startRss)} -> ${mib(small.peakRss)} MiB with a 1 MiB buffer, ${mib(large.startRss)} -> ${mib(large.peakRss)} MiB with 32 MiB: ` +
    `${cost.toFixed(2)} bytes of memory per byte of bound`)
  t.ok(cost <= 1.5, `the buffer cost ${cost.toFixed(2)} times its bound`)
})
