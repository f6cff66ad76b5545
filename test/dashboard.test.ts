import { get, type IncomingMessage } from 'node:http'
import { Redis } from 'ioredis'
import t from 'tap'
import type { CallStartEvent, CallStopEvent } from '../src/bus/call-events.js'
import { callIn, listenIn, openFeed } from './helpers/dashboard.js'
import { ProviderClient, basicAuth, exotelStrings, pcmFrame } from './helpers/exotel.js'
import { startGateway, startListenedGateway } from './helpers/gateway.js'
import { inSeconds, signJwt } from './helpers/jwt.js'
import { playbackWorker } from './helpers/playback-worker.js'
import { TestRedis } from './helpers/redis-server.js'

/*
 * The live call dashboard over plain HTTP, as a script or the page would use it: its feed (Server-Sent Events), one
 * view as JSON, listen-in, and who may open each. The page itself, in a real browser, is dashboard-browser.test.ts.
 */

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

const SECRET = 'dashboard-test-secret-of-32-bytes-at-least'
/** 100 ms of 8 kHz PCM: one Exotel chunk. */
const FRAME = 1600

/** A GET with the Host header a browser would send for a page opened by that name (fetch may not set Host). */
async function getWithHost (url: string, host: string): Promise<{ status: number, body: string }> {
  const response = await new Promise<IncomingMessage>((resolve, reject) => get(url, { headers: { host } }, resolve).once('error', reject))
  let body = ''
  for await (const chunk of response) body += String(chunk)
  return { status: response.statusCode ?? 0, body }
}

/** Exotel's start naming `account`. */
function exotelStart (callSid: string, account: string): ReturnType<typeof exotelStrings.start> {
  const message = exotelStrings.start(callSid)
  return { ...message, start: { ...message.start, account_sid: account } }
}

t.test('the feed shows a call as it starts, counts its frames and gaps, gives its levels, and lists it as ended with its reason', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const feed = await openFeed(t, gateway.url)
  t.equal(feed.status, 200, 'loopback may open the feed by default')
  t.match(feed.headers.get('content-type'), /^text\/event-stream/)
  const first = await feed.views.waitFor(() => true, 'a first view')
  t.same(first.viewer, { who: 'ip:127.0.0.1', tenant: null }, 'the viewer is the loopback address, seeing every tenant')
  t.equal(first.listen, false, 'listen-in is off by default')
  t.match(first.processes, [{ pid: process.pid, worker: null, max_calls: 120, accepting: true, redis: { connected: true, buffer_bytes: 0 } }])

  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  client.send(exotelStart('CAdash', 'ACdash'))
  const started = await feed.views.waitFor((view) => callIn(view, 'CAdash') !== undefined, 'the call in a view')
  t.match(callIn(started, 'CAdash'), { vendor: 'exotel', tenant_id: 'ACdash', tenant_verified: false, sample_rate: 8000, track_names: ['inbound'], state: 'live', frames: 0 })
  await subscriber.waitForEvent('call.start', 'CAdash')

  // Chunks 1-3, then 6: 4 and 5 are a gap. A loud frame, then quiet ones, so the levels differ.
  const loud = Buffer.alloc(FRAME)
  for (let i = 0; i < FRAME / 2; i++) loud.writeInt16LE(i % 2 === 0 ? 16384 : -16384, i * 2)
  const frames = [loud, pcmFrame(FRAME, 1), pcmFrame(FRAME, 2), Buffer.alloc(FRAME)]
  for (const [i, chunk] of [1, 2, 3, 6].entries()) client.send(exotelStrings.media('MZCAdash', chunk + 1, chunk, (chunk - 1) * 100, frames[i]))
  const counted = await feed.views.waitFor((view) => callIn(view, 'CAdash')?.frames === 4, 'four frames counted')
  const call = callIn(counted, 'CAdash')
  t.match(call, { frames: 4, gaps: 2, duplicates: 0, reordered: 0, frames_lost: 0, paused: null }, 'the frames and the gap, as the call counts them')
  const levels = await feed.views.waitFor((view) => (callIn(view, 'CAdash')?.levels.inbound?.values.length ?? 0) >= 3, 'levels for the watched call')
  const { values } = callIn(levels, 'CAdash')?.levels.inbound ?? { values: [] }
  // A square wave at half of full scale is -6 dBFS; digital silence is the scale's floor.
  t.equal(values[0], -6, 'the loud frame\'s level, in dBFS')
  t.equal(values.at(-1), -90, 'silence is -90 dBFS')

  client.send(exotelStrings.stop('CAdash', 'MZCAdash', 8))
  const stop = await subscriber.waitForEvent('call.stop', 'CAdash') as CallStopEvent
  const ended = await feed.views.waitFor((view) => view.ended.some((each) => each.interaction_id === 'CAdash'), 'the call among the ended')
  t.notOk(callIn(ended, 'CAdash'), 'the call has left the live calls')
  t.match(ended.ended.find((each) => each.interaction_id === 'CAdash'), { end_reason: stop.reason, state: 'ended', frames: 4, gaps: 2, vendor: 'exotel' }, 'with call.stop\'s reason and totals')
  t.equal(stop.reason, 'callended')

  const json = await fetch(`${gateway.url}/dashboard/view`).then(async (response) => response.json()) as { ended: Array<{ interaction_id: string }> }
  t.ok(json.ended.some((each) => each.interaction_id === 'CAdash'), '/dashboard/view gives the same view as JSON')
})

t.test('access: loopback only by default, never wider than /metrics; Basic operators see every tenant, a JWT only its own', async (t) => {
  const trusted = { TRUST_PROXY: '127.0.0.1/32' }
  const open = await startGateway(t, redis.url, trusted)
  const from = (ip: string): Record<string, string> => ({ 'x-forwarded-for': ip })
  for (const path of ['/dashboard', '/dashboard/view', '/dashboard/feed', '/dashboard/listen?call={a:b}&track=inbound']) {
    const response = await fetch(`${open.url}${path}`, { headers: from('203.0.113.9') })
    t.equal(response.status, 403, `${path} from the internet: 403`)
    t.match(await response.json(), { message: 'client address is not in DASHBOARD_ALLOWLIST' })
  }
  // A private address may scrape /metrics by default; the dashboard is narrower.
  t.equal((await fetch(`${open.url}/metrics`, { headers: from('10.1.2.3') })).status, 200, '/metrics admits a private address')
  t.equal((await fetch(`${open.url}/dashboard`, { headers: from('10.1.2.3') })).status, 403, 'the dashboard does not')
  const page = await fetch(`${open.url}/dashboard`)
  t.equal(page.status, 200, 'loopback opens the page')
  t.match(page.headers.get('content-type'), /^text\/html/)
  t.match(page.headers.get('content-security-policy'), /default-src 'none'; script-src 'sha256-/, 'the page runs only its own script')
  t.equal(page.headers.get('referrer-policy'), 'no-referrer')
  t.match(open.logs.items.find((line) => line.msg === 'authentication failed'), { auth_method: 'ip', reason: 'ip_not_allowed', ip: '203.0.113.9', status: 403 })
  // A page opened by a name could be an attacker's whose name resolves here (DNS rebinding): no credential, no entry.
  const rebound = await getWithHost(`${open.url}/dashboard/view`, 'attacker.example:8443')
  t.equal(rebound.status, 403, 'loopback, but the page was opened by a name: 403')
  t.match(JSON.parse(rebound.body), { message: /open the dashboard by address/ })
  t.equal((await getWithHost(`${open.url}/dashboard/view`, 'localhost:8443')).status, 200, 'localhost is an address')
  t.equal((await getWithHost(`${open.url}/dashboard/view`, '[::1]:8443')).status, 200, 'and so is an IPv6 literal')

  const gateway = await startGateway(t, redis.url, {
    ...trusted,
    LOG_LEVEL: 'info',
    DASHBOARD_BASIC_CREDENTIALS: 'ops:ops-password-never-logged',
    JWT_SECRET: SECRET,
    BASIC_AUTH_CREDENTIALS: 'keyOne:tokenOne-secret,keyTwo:tokenTwo-secret',
    BASIC_AUTH_ACCOUNTS: 'keyOne=ACone,keyTwo=ACtwo'
  })
  const challenged = await fetch(`${gateway.url}/dashboard`, { headers: from('203.0.113.9') })
  t.equal(challenged.status, 401, 'with credentials configured, a client outside the allowlist is asked for them')
  t.match(challenged.headers.get('www-authenticate'), /^Basic realm="rtaa-ingest"/, 'so a browser prompts for Basic')
  const wrong = await fetch(`${gateway.url}/dashboard/view`, { headers: { ...from('203.0.113.9'), authorization: basicAuth('ops', 'wrong') } })
  t.equal(wrong.status, 401, 'a wrong password: 401')
  const vendorKey = await fetch(`${gateway.url}/dashboard/view`, { headers: { ...from('203.0.113.9'), authorization: basicAuth('keyOne', 'tokenOne-secret') } })
  t.equal(vendorKey.status, 401, 'a vendor\'s Basic key does not open the dashboard')

  // Three calls: ACone and ACtwo, each vouched for by its key, and one that merely names ACone (loopback, unverified).
  const calls = [['CAone', 'keyOne', 'ACone'], ['CAtwo', 'keyTwo', 'ACtwo'], ['CAclaims', null, 'ACone']] as const
  for (const [sid, key, account] of calls) {
    const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`, key === null ? {} : { headers: { authorization: basicAuth(key, `token${key.slice(3)}-secret`) } })
    t.teardown(() => client.close())
    client.send(exotelStart(sid, account))
  }
  const operator = { ...from('203.0.113.9'), authorization: basicAuth('ops', 'ops-password-never-logged') }
  const everyone = await openFeed(t, gateway.url, operator)
  const all = await everyone.views.waitFor((view) => view.calls.length === 3, 'the operator sees all three calls')
  t.same(all.viewer, { who: 'basic:ops', tenant: null })

  const streaming = signJwt({ tenant_id: 'ACone', sub: 'alice', exp: inSeconds(600) }, SECRET)
  const unscoped = await fetch(`${gateway.url}/dashboard/view`, { headers: { ...from('203.0.113.9'), authorization: `Bearer ${streaming}` } })
  t.equal(unscoped.status, 403, 'a token without the dashboard scope (one minted for streaming) does not open it')
  t.match(await unscoped.json(), { message: 'the token\'s scope claim does not include dashboard' })
  const token = signJwt({ tenant_id: 'ACone', sub: 'alice', scope: 'dashboard', exp: inSeconds(600) }, SECRET)
  const tenantFeed = await openFeed(t, `${gateway.url}`, { ...from('203.0.113.9'), authorization: `Bearer ${token}` })
  const own = await tenantFeed.views.waitFor((view) => view.calls.length > 0, 'the tenant\'s view')
  t.same(own.viewer, { who: 'jwt:alice@ACone', tenant: 'ACone' })
  t.same(own.calls.map((call) => call.interaction_id), ['CAone'], 'a JWT for ACone sees ACone\'s verified call only: not ACtwo\'s, nor one that merely names ACone')
  t.match(own.processes, [{ connections: 1, rss_bytes: null, redis: { connected: true, buffer_bytes: null } }],
    'its process panel counts its own calls, and leaves out what tells of other tenants\' traffic')
  const viaQuery = await fetch(`${gateway.url}/dashboard/view?access_token=${token}`, { headers: from('203.0.113.9') })
  t.same(((await viaQuery.json()) as { calls: Array<{ interaction_id: string }> }).calls.map((call) => call.interaction_id), ['CAone'], 'the page\'s ?access_token= works the same')
  const otherCall = all.calls.find((call) => call.interaction_id === 'CAtwo')
  const peek = await listenIn(t, gateway.url, otherCall?.id ?? '', 'inbound', { authorization: `Bearer ${token}` })
  t.equal(peek.status, 403, 'listen-in is off: refused before any call is looked up')

  const lines = JSON.stringify(gateway.logs.items)
  t.notOk(lines.includes('ops-password-never-logged'), 'no password in the log')
  t.notOk(lines.includes(token) || lines.includes(streaming), 'no token in the log')
  t.ok(gateway.logs.items.some((line) => line.msg === 'authentication failed' && line.auth_method === 'basic' && line.reason === 'bad_credentials'), 'a wrong password is logged by reason')
})

t.test('listen-in: off by default and logged; enabled, it streams exactly the published PCM of the track asked, never a paused call\'s, and ends with the call', async (t) => {
  const off = await startGateway(t, redis.url, { LOG_LEVEL: 'info' })
  const refused = await listenIn(t, off.url, '{~ACx:CAx}', 'inbound')
  t.equal(refused.status, 403)
  t.match(JSON.parse(refused.body), { message: 'listen-in is off (DASHBOARD_LISTEN)' })
  t.match(await off.logs.waitFor((line) => line.msg === 'listen-in refused: DASHBOARD_LISTEN is off'), { viewer: 'ip:127.0.0.1', call: '{~ACx:CAx}' })

  const { gateway, subscriber } = await startListenedGateway(t, redis.url, { LOG_LEVEL: 'info', DASHBOARD_LISTEN: 'true', JWT_SECRET: SECRET })
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  client.send(exotelStart('CAlisten', 'AClisten'))
  const start = await subscriber.waitForEvent('call.start', 'CAlisten') as CallStartEvent
  const view = await fetch(`${gateway.url}/dashboard/view`).then(async (response) => response.json()) as { calls: Array<{ id: string, interaction_id: string }> }
  const id = view.calls.find((call) => call.interaction_id === 'CAlisten')?.id ?? ''
  t.equal(id, '{~AClisten:CAlisten}', 'a call\'s id is its tag')

  t.equal((await listenIn(t, gateway.url, id, 'outbound')).status, 404, 'a track the call does not have: 404')
  t.equal((await listenIn(t, gateway.url, '{~AClisten:CAnone}', 'inbound')).status, 404, 'no such call: 404')
  const stranger = signJwt({ tenant_id: 'ACother', scope: 'dashboard', exp: inSeconds(600) }, SECRET)
  const hidden = await listenIn(t, gateway.url, id, 'inbound', { authorization: `Bearer ${stranger}` })
  t.equal(hidden.status, 404, 'another tenant\'s viewer is told there is no such call')

  const listening = await listenIn(t, gateway.url, id, 'inbound')
  t.equal(listening.status, 200)
  t.equal(listening.headers.get('x-sample-rate'), '8000')
  t.equal(listening.headers.get('x-encoding'), 'pcm_s16le')
  t.match(await gateway.logs.waitFor((line) => line.msg === 'listen-in started'), { viewer: 'ip:127.0.0.1', interaction_id: 'CAlisten', tenant_id: 'AClisten', track: 'inbound', sample_rate: 8000 },
    'who listens to which call is logged')

  const heard = [pcmFrame(FRAME, 10), pcmFrame(FRAME, 11)]
  const withheld = [pcmFrame(FRAME, 12), pcmFrame(FRAME, 13)]
  const after = [pcmFrame(FRAME, 14)]
  let chunk = 0
  const send = (pcm: Buffer): void => { chunk++; client.send(exotelStrings.media('MZCAlisten', chunk + 1, chunk, (chunk - 1) * 100, pcm)) }
  for (const pcm of heard) send(pcm)
  await listening.chunks.waitFor(() => Buffer.concat(listening.chunks.items).length === 2 * FRAME, 'the first two frames')
  // A worker pauses the call (a card number being read): nothing of it reaches Redis, nor the listener.
  const publisher = new Redis(redis.url)
  t.teardown(() => publisher.disconnect())
  await publisher.publish(start.playback_channel, JSON.stringify({ type: 'pause' }))
  await subscriber.waitForEvent('call.paused', 'CAlisten')
  for (const pcm of withheld) send(pcm)
  await publisher.publish(start.playback_channel, JSON.stringify({ type: 'resume' }))
  await subscriber.waitForEvent('call.resumed', 'CAlisten')
  for (const pcm of after) send(pcm)
  client.send(exotelStrings.stop('CAlisten', 'MZCAlisten', chunk + 2))
  const bytes = await listening.ended
  t.ok(bytes.equals(Buffer.concat([...heard, ...after])), 'the listener got the published PCM, byte for byte, and none of the paused audio')
  await subscriber.waitForEvent('call.stop', 'CAlisten')
  const published = Buffer.concat(subscriber.frames('CAlisten').map(({ pcm }) => pcm))
  t.ok(bytes.equals(published), 'the same bytes as Redis got')
  t.match(await gateway.logs.waitFor((line) => line.msg === 'listen-in ended'), { viewer: 'ip:127.0.0.1', reason: 'call_ended', bytes: 3 * FRAME, frames_dropped: 0 })
})

t.test('DASHBOARD_MAX_VIEWERS bounds feeds and listen-ins per process; DASHBOARD_ENABLED=false serves no dashboard', async (t) => {
  const gateway = await startGateway(t, redis.url, { DASHBOARD_MAX_VIEWERS: '1' })
  const first = await openFeed(t, gateway.url)
  t.equal(first.status, 200)
  const second = await openFeed(t, gateway.url)
  t.equal(second.status, 503, 'the next viewer: 503')
  t.match(JSON.parse(second.body), { message: 'too many dashboard viewers' })
  first.close()
  const again = await gateway.logs.waitFor((line) => line.msg === 'dashboard feed closed', 'the first feed closed')
  t.ok(again)
  t.equal((await openFeed(t, gateway.url)).status, 200, 'its place is free again once it leaves')

  const disabled = await startGateway(t, redis.url, { DASHBOARD_ENABLED: 'false' })
  t.equal((await fetch(`${disabled.url}/dashboard`)).status, 404)
  t.equal((await fetch(`${disabled.url}/dashboard/feed`)).status, 404)
})

t.test('a two-way call\'s playback shows: audio queued, the lead at the vendor, and marks until played or cleared', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const worker = playbackWorker(t, redis.url)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  client.send(exotelStart('CAplay', 'ACplay'))
  const start = await subscriber.waitForEvent('call.start', 'CAplay') as CallStartEvent
  const feed = await openFeed(t, gateway.url)
  // Five seconds of bot audio, then a mark: the gateway sends 400 ms ahead (PLAYBACK_LEAD_MS) and queues the rest.
  await worker.audio(start.playback_channel, 8000, Buffer.alloc(5 * 16000))
  await worker.command(start.playback_channel, { type: 'mark', name: 'greeting-done' })
  const playing = await feed.views.waitFor((view) => (callIn(view, 'CAplay')?.playback?.queued_ms ?? 0) > 0, 'playback queued')
  const playback = callIn(playing, 'CAplay')?.playback
  t.ok((playback?.queued_ms ?? 0) > 3000 && (playback?.queued_ms ?? 0) <= 5000, `most of the audio waits in the gateway: ${playback?.queued_ms} ms`)
  t.ok((playback?.lead_ms ?? 0) > 0 && (playback?.lead_ms ?? 0) <= 400, `what was sent is not yet played, within the lead: ${playback?.lead_ms} ms`)
  t.equal(playback?.marks_pending, 1, 'the mark waits behind the audio')
  // A clear drops the audio and reports the mark cleared: nothing is pending any more.
  await worker.command(start.playback_channel, { type: 'clear' })
  const cleared = await feed.views.waitFor((view) => callIn(view, 'CAplay')?.playback?.marks_pending === 0, 'the mark cleared')
  t.match(callIn(cleared, 'CAplay')?.playback, { queued_ms: 0, marks_pending: 0 })
})

t.test('closing the gateway ends open feeds and listen-ins at once, so a shutdown never waits on a browser', async (t) => {
  const gateway = await startGateway(t, redis.url, { LOG_LEVEL: 'info', DASHBOARD_LISTEN: 'true' })
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
  client.send(exotelStart('CAclose', 'ACclose'))
  const feed = await openFeed(t, gateway.url)
  const view = await feed.views.waitFor((each) => callIn(each, 'CAclose') !== undefined, 'the call in a view')
  const listening = await listenIn(t, gateway.url, callIn(view, 'CAclose')?.id ?? '', 'inbound')
  t.equal(listening.status, 200)
  await gateway.app.close()
  t.ok(gateway.logs.items.some((line) => line.msg === 'dashboard feed closed'), 'the feed was closed')
  // The shutdown ends the calls first (1001), and a listen-in ends with its call.
  t.match(await gateway.logs.waitFor((line) => line.msg === 'listen-in ended'), { reason: 'call_ended' }, 'the listen-in ended with its call')
  t.same(await listening.ended, Buffer.alloc(0), 'and its stream ended')
})
