import { get } from 'node:http'
import t from 'tap'
import { TestRedis } from './helpers/redis-server.js'
import { startListenedGateway } from './helpers/gateway.js'
import { ProviderClient, basicAuth, exotelStrings, pcmFrame, refusedUpgrade } from './helpers/exotel.js'
import { scrape, total, type Sample } from './helpers/metrics.js'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

/** Scrapes until a condition holds: publish acknowledgements are counted as Redis answers, a moment after. */
async function scrapeUntil (url: string, done: (samples: Sample[]) => boolean): Promise<Sample[]> {
  for (let attempt = 0; ; attempt++) {
    const samples = await scrape(url)
    if (done(samples) || attempt === 100) return samples
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

t.test('after a known call, /metrics counts it, its frames, its sequence trouble, and the refusals around it', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { BASIC_AUTH_CREDENTIALS: 'key:token', BASIC_AUTH_ACCOUNTS: 'key=*' })
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  client.send(exotelStrings.start('CAmetrics'))
  // Chunks 1, 2, 4, 3, 4, 6: 3 comes late, 4 comes twice, 5 never comes.
  for (const [i, chunk] of [1, 2, 4, 3, 4, 6].entries()) client.send(exotelStrings.media('MZCAmetrics', i + 2, chunk, i * 100, pcmFrame(1600, i)))
  client.send(exotelStrings.stop('CAmetrics', 'MZCAmetrics', 9))
  await client.closed
  t.match(await subscriber.waitForEvent('call.stop', 'CAmetrics'), { frames: 6, gaps: 1, duplicates: 1, reordered: 1, frames_lost: 0 })

  t.equal((await refusedUpgrade(`${gateway.wsUrl}/v1/ingest`, { headers: { authorization: basicAuth('key', 'wrong') } })).status, 401)
  const bad = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  bad.send(exotelStrings.start('CAbadmetrics'))
  bad.send('{"event":')
  await bad.closed

  const samples = await scrapeUntil(gateway.url, (s) => total(s, 'rtaa_frames_published_total') === 6 && total(s, 'rtaa_calls_ended_total') === 2)
  const exotel = { vendor: 'exotel' }
  t.equal(total(samples, 'rtaa_calls_started_total', exotel), 2)
  t.equal(total(samples, 'rtaa_calls_ended_total', { ...exotel, reason: 'callended' }), 1)
  t.equal(total(samples, 'rtaa_calls_ended_total', { ...exotel, reason: 'protocol_error' }), 1)
  t.equal(total(samples, 'rtaa_calls_active', exotel), 0)
  t.equal(total(samples, 'rtaa_inbound_frames_total', exotel), 6)
  t.equal(total(samples, 'rtaa_inbound_bytes_total', exotel), 6 * 1600)
  t.equal(total(samples, 'rtaa_frames_published_total', exotel), 6)
  t.equal(total(samples, 'rtaa_publish_latency_seconds_count'), 6, 'every published frame has a latency')
  t.equal(total(samples, 'rtaa_sequence_gaps_total', exotel), 2, 'two jumps seen (3 and 5 missing when seen)')
  t.equal(total(samples, 'rtaa_sequence_reorders_total', exotel), 1)
  t.equal(total(samples, 'rtaa_sequence_duplicates_total', exotel), 1)
  t.equal(total(samples, 'rtaa_auth_failures_total', { method: 'basic', reason: 'bad_credentials' }), 1)
  t.equal(total(samples, 'rtaa_input_errors_total', { vendor: 'exotel', reason: 'invalid_payload' }), 1)
  t.equal(total(samples, 'rtaa_redis_connected'), 1)
  t.ok(samples.some((sample) => sample.name === 'nodejs_eventloop_lag_p99_seconds'), 'event-loop delay is exported')
  t.ok(samples.some((sample) => sample.name === 'process_cpu_user_seconds_total'), 'default process metrics are exported')
  t.notOk(samples.some((sample) => Object.values(sample.labels).some((value) => value.startsWith('CA'))), 'no label carries a call id')
})

t.test('a live call\'s frames count at every scrape, and its end adds none twice', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  client.send(exotelStrings.start('CAlive'))
  for (let i = 0; i < 3; i++) client.send(exotelStrings.media('MZCAlive', i + 2, i + 1, i * 100, pcmFrame(1600, i)))
  const exotel = { vendor: 'exotel' }
  const live = await scrapeUntil(gateway.url, (s) => total(s, 'rtaa_frames_published_total', exotel) === 3)
  t.equal(total(live, 'rtaa_calls_active', exotel), 1, 'the call is still live')
  t.equal(total(live, 'rtaa_inbound_frames_total', exotel), 3)
  t.equal(total(live, 'rtaa_inbound_bytes_total', exotel), 3 * 1600)
  t.equal(total(live, 'rtaa_frames_published_total', exotel), 3)

  client.send(exotelStrings.media('MZCAlive', 5, 4, 300, pcmFrame(1600, 3)))
  client.send(exotelStrings.stop('CAlive', 'MZCAlive', 6))
  await client.closed
  await subscriber.waitForEvent('call.stop', 'CAlive')
  const ended = await scrapeUntil(gateway.url, (s) => total(s, 'rtaa_frames_published_total', exotel) === 4)
  t.equal(total(ended, 'rtaa_calls_active', exotel), 0)
  t.equal(total(ended, 'rtaa_inbound_frames_total', exotel), 4)
  t.equal(total(ended, 'rtaa_inbound_bytes_total', exotel), 4 * 1600)
  t.equal(total(ended, 'rtaa_frames_published_total', exotel), 4)
})

t.test('only METRICS_ALLOWLIST may scrape', async (t) => {
  const { gateway } = await startListenedGateway(t, redis.url, { METRICS_ALLOWLIST: '127.0.0.2/32' })
  const status = (localAddress: string): Promise<number | undefined> => new Promise((resolve, reject) => {
    get(`${gateway.url}/metrics`, { localAddress }, (response) => {
      response.resume()
      resolve(response.statusCode)
    }).on('error', reject)
  })
  t.equal(await status('127.0.0.1'), 403, '127.0.0.1 is not in 127.0.0.2/32')
  t.equal(await status('127.0.0.2'), 200)
})

t.test('METRICS_TENANT_LABEL adds the tenant to call metrics', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { METRICS_TENANT_LABEL: 'true', EXOTEL_ACCOUNT_SIDS: 'ACxxxxxxxxxxxxxxxxxxxxxxxx' })
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  client.send(exotelStrings.start('CAtenant'))
  await subscriber.waitForEvent('call.start', 'CAtenant')
  const samples = await scrape(gateway.url)
  t.equal(total(samples, 'rtaa_calls_active', { vendor: 'exotel', tenant: 'ACxxxxxxxxxxxxxxxxxxxxxxxx' }), 1)
  client.close()
})
