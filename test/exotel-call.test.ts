import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { TestRedis } from './helpers/redis-server.js'
import { startGateway, startListenedGateway, waitReady } from './helpers/gateway.js'
import { ProviderClient, basicAuth, exotelNumbers, exotelStrings, pcmFrame, refusedUpgrade } from './helpers/exotel.js'
import { startReplica } from './helpers/server-process.js'
import type { CallStartEvent, CallStopEvent } from '../src/bus/call-events.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

for (const sampleRate of [8000, 16000, 24000]) {
  t.test(`a full Exotel call at ${sampleRate} Hz arrives on Redis byte for byte`, async (t) => {
    const { gateway, subscriber } = await startListenedGateway(t, redis.url)
    const callSid = `CA${sampleRate}`
    const streamSid = `MZ${sampleRate}`
    const frameBytes = (sampleRate * 2) / 10 // 100 ms, Exotel's documented cadence
    const frames = Array.from({ length: 12 }, (_, i) => pcmFrame(frameBytes, i))

    const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=${sampleRate}`)
    client.send(exotelStrings.connected())
    client.send(exotelStrings.start(callSid, streamSid))
    frames.forEach((pcm, i) => client.send(exotelStrings.media(streamSid, i + 2, i + 1, i * 100, pcm)))
    client.send(exotelStrings.dtmf(streamSid, 14, '5'))
    client.send(exotelStrings.stop(callSid, streamSid, 15))

    t.same(await client.closed, { code: 1000, reason: 'stream stopped' }, 'the server closes normally after stop')
    const stop = await subscriber.waitForEvent('call.stop', callSid) as CallStopEvent
    const start = subscriber.events(callSid)[0] as CallStartEvent

    t.match(start, {
      type: 'call.start',
      interaction_id: callSid,
      tenant_id: 'ACxxxxxxxxxxxxxxxxxxxxxxxx',
      tenant_verified: false,
      vendor: 'exotel',
      stream_id: streamSid,
      sample_rate: sampleRate,
      encoding: 'pcm_s16le',
      channels: 1,
      from: '+919876543210',
      to: '+918047491899',
      custom_parameters: { key1: 'value1' },
      audio_channel: `${gateway.prefix}audio:{~ACxxxxxxxxxxxxxxxxxxxxxxxx:${callSid}}`,
      playback_channel: `${gateway.prefix}playback:{~ACxxxxxxxxxxxxxxxxxxxxxxxx:${callSid}}`,
      contract_version: 2
    })
    t.type(start.ts, 'number')

    const published = subscriber.frames(callSid)
    t.equal(published.length, frames.length, 'one audio message per media event')
    t.ok(Buffer.concat(published.map((f) => f.pcm)).equals(Buffer.concat(frames)), 'PCM identical to what was sent')
    published.forEach(({ header }, i) => t.same(header, {
      interaction_id: callSid,
      tenant_id: 'ACxxxxxxxxxxxxxxxxxxxxxxxx',
      seq: i + 1,
      vendor_seq: i + 2,
      timestamp_ms: i * 100,
      sample_rate: sampleRate,
      encoding: 'pcm_s16le',
      channels: 1
    }))

    t.match(subscriber.events(callSid)[1], { type: 'call.dtmf', digit: '5', duration_ms: 100, vendor: 'exotel' })
    t.match(stop, { reason: 'callended', frames: frames.length, bytes: frames.length * frameBytes, vendor: 'exotel' })
    t.same(subscriber.sequence(callSid), ['start', ...frames.map(() => 'audio'), 'dtmf', 'stop'],
      'call.start before the first frame, call.stop after the last')
  })
}

t.test('the numeric variant of the docs is accepted, and timestamps are derived when absent', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample_rate=16000`)
  client.send(exotelNumbers.connected())
  client.send(exotelNumbers.start('CAnum', 'MZnum'))
  client.send(exotelNumbers.media('MZnum', 2, 1, 0, pcmFrame(640, 1)))
  // No timestamp and no sequence_number: the gateway derives the time from the bytes so far.
  client.send({ event: 'media', media: { payload: pcmFrame(640, 2).toString('base64') } })
  client.send(exotelNumbers.mark('MZnum', 4, 'greeting-done'))
  client.send({ event: 'stop', stream_sid: 'MZnum' })

  await client.closed
  const stop = await subscriber.waitForEvent('call.stop', 'CAnum')
  const frames = subscriber.frames('CAnum')
  t.match(frames.map((f) => f.header), [
    { seq: 1, vendor_seq: 2, timestamp_ms: 0, sample_rate: 16000 },
    { seq: 2, vendor_seq: null, timestamp_ms: 20, sample_rate: 16000 }
  ])
  t.match(subscriber.events('CAnum')[1], { type: 'call.mark', name: 'greeting-done' })
  t.match(stop, { reason: 'stopped', frames: 2, bytes: 1280 })
  t.match(subscriber.events('CAnum')[0], { tenant_id: 'ACnumeric', custom_parameters: { key1: 'value1', key2: 'value2' } })
})

t.test('stream_sid inside start or as streamSid is used when the top level has none', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  client.send({ event: 'start', start: { streamSid: 'MZcamel', call_sid: 'CAcamel' } })
  client.send({ event: 'stop' })
  await client.closed
  t.match(await subscriber.waitForEvent('call.stop', 'CAcamel'), { stream_id: 'MZcamel', tenant_id: null })
  t.match(subscriber.events('CAcamel')[0], { stream_id: 'MZcamel', from: null, to: null, custom_parameters: {} })
})

t.test('the URL sample rate wins over the start message, with a warning', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=24000`)
  client.send(exotelStrings.start('CArate')) // says sample_rate "8000"
  client.send(exotelStrings.stop('CArate', 'MZCArate', 2))
  await client.closed
  t.match(await subscriber.waitForEvent('call.start', 'CArate'), { sample_rate: 24000 })
  const warning = await gateway.logs.waitFor((line) => line.declared_sample_rate !== undefined)
  t.match(warning, { level: 40, sample_rate: 24000, declared_sample_rate: 8000, interaction_id: 'CArate', vendor: 'exotel' })
})

t.test('without a sample rate in the URL, EXOTEL_DEFAULT_SAMPLE_RATE applies', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { EXOTEL_DEFAULT_SAMPLE_RATE: '16000' })
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  client.send({ event: 'start', start: { call_sid: 'CAdefault' } })
  client.send({ event: 'stop' })
  await client.closed
  t.match(await subscriber.waitForEvent('call.start', 'CAdefault'), { sample_rate: 16000 })
})

t.test('an unsupported sample rate is refused at the upgrade with 400', async (t) => {
  const gateway = await startGateway(t, redis.url)
  for (const query of ['sample-rate=44100', 'sample_rate=abc', 'sample-rate=']) {
    const refused = await refusedUpgrade(`${gateway.wsUrl}/v1/ingest?${query}`)
    t.equal(refused.status, 400, query)
    t.match(JSON.parse(refused.body), { message: /sample-rate must be one of 8000, 16000, 24000/ }, query)
  }
})

t.test('unknown events and fields are ignored and logged at debug', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  client.send({ event: 'connected', protocol: 'Exotel Media Stream', version: '1.0.0' })
  client.send(exotelStrings.start('CAunknown'))
  client.send({ event: 'silence', stream_sid: 'MZCAunknown' })
  client.send({ ...exotelStrings.media('MZCAunknown', 3, 1, 0, pcmFrame(320, 1)), extra: true })
  client.send(exotelStrings.stop('CAunknown', 'MZCAunknown', 4))
  await client.closed
  await subscriber.waitForEvent('call.stop', 'CAunknown')
  t.equal(subscriber.frames('CAunknown').length, 1, 'the call went on')
  t.match(await gateway.logs.waitFor((line) => line.msg === 'unknown event, ignored'), { level: 20, event: 'silence' })
  t.match(await gateway.logs.waitFor((line) => line.msg === 'unknown fields, ignored' && String(line.fields).includes('/extra')),
    { level: 20, interaction_id: 'CAunknown' })
})

t.test('one log line per call start and end, naming the call and the vendor', async (t) => {
  const gateway = await startGateway(t, redis.url)
  await waitReady(gateway)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=16000`)
  client.send(exotelStrings.start('CAlog'))
  client.send(exotelStrings.media('MZCAlog', 2, 1, 0, pcmFrame(640, 1)))
  client.close()
  const ended = await gateway.logs.waitFor((line) => line.msg === 'call ended')
  const started = gateway.logs.items.find((line) => line.msg === 'call started')
  t.match(started, { level: 30, interaction_id: 'CAlog', tenant_id: 'ACxxxxxxxxxxxxxxxxxxxxxxxx', vendor: 'exotel', sample_rate: 16000 })
  t.match(ended, {
    level: 30,
    interaction_id: 'CAlog',
    tenant_id: 'ACxxxxxxxxxxxxxxxxxxxxxxxx',
    vendor: 'exotel',
    sample_rate: 16000,
    frames: 1,
    bytes: 640,
    reason: 'disconnected'
  })
  t.type(ended.duration_ms, 'number')
  t.notOk(gateway.logs.items.some((line) => line.level === 30 && line.msg !== undefined && /frame/.test(line.msg)),
    'nothing is logged per frame at info')
})

t.test('grep exotel on LOG_FILE finds every line of an Exotel connection, from the upgrade to the close, refusals too', async (t) => {
  const logFile = join(t.testdir(), 'gateway.log')
  const replica = await startReplica(t, { REDIS_URL: redis.url, REDIS_PREFIX: 'grep:', LOG_FILE: logFile, LOG_LEVEL: 'info' })
  const expected = new Map<string, string[]>()
  for (const path of ['/v1/ingest', '/v1/ingest/exotel']) {
    const url = (probe: string, sampleRate = '8000'): string => {
      expected.set(probe, [])
      return `${replica.wsUrl}${path}?sample-rate=${sampleRate}&probe=${probe}`
    }
    const call = `${path}-call`
    const client = await ProviderClient.connect(url(call))
    client.send(exotelStrings.connected())
    client.send(exotelStrings.start(`CAgrep${path.length}`))
    client.send(exotelStrings.media(`MZCAgrep${path.length}`, 2, 1, 0, pcmFrame(320, 1)))
    client.send(exotelStrings.stop(`CAgrep${path.length}`, `MZCAgrep${path.length}`, 3))
    t.equal((await client.closed).code, 1000)
    expected.set(call, ['incoming request', 'connection opened', 'call started', 'call ended'])

    t.equal((await refusedUpgrade(url(`${path}-rate`, '16000.0'))).status, 400)
    expected.set(`${path}-rate`, ['incoming request', 'upgrade refused: bad request'])
    t.equal((await refusedUpgrade(url(`${path}-auth`), { headers: { authorization: basicAuth('key', 'token') } })).status, 401)
    expected.set(`${path}-auth`, ['incoming request', 'authentication failed'])

    const bad = await ProviderClient.connect(url(`${path}-bad`))
    bad.send({ event: 'start', hello: 'world' })
    t.equal((await bad.closed).code, 1007)
    expected.set(`${path}-bad`, ['incoming request', 'connection opened', 'closing connection: bad input'])

    const silent = await ProviderClient.connect(url(`${path}-silent`))
    silent.close()
    await silent.closed
    expected.set(`${path}-silent`, ['incoming request', 'connection opened', 'connection closed before start'])
  }
  await replica.lines.waitFor((line) => line.msg === 'connection closed before start' && line.reqId !== undefined &&
    replica.lines.items.some((other) => other.reqId === line.reqId && String((other.req as { url?: string } | undefined)?.url).includes('/v1/ingest/exotel-silent')),
  'the last connection closed')
  replica.child.kill('SIGTERM')
  t.equal(await replica.exited, 0)

  const lines = readFileSync(logFile, 'utf8').trim().split('\n')
  for (const [probe, messages] of expected) {
    const upgrade = lines.find((line) => line.includes('"incoming request"') && line.includes(`probe=${probe}`))
    t.ok(upgrade, `${probe}: the upgrade is logged`)
    const reqId = (JSON.parse(upgrade ?? '{}') as { reqId?: string }).reqId
    const connection = lines.filter((line) => (JSON.parse(line) as { reqId?: string }).reqId === reqId)
    const without = connection.filter((line) => !line.includes('exotel'))
    t.same(without, [], `${probe}: every line about the connection names exotel`)
    const logged = connection.map((line) => (JSON.parse(line) as { msg: string }).msg)
    for (const message of messages) t.ok(logged.includes(message), `${probe}: ${message}`)
  }
})
