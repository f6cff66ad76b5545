import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import t from 'tap'
import type { CallStopEvent } from '../src/bus/call-events.js'
import { launchBrowser } from './helpers/browser.js'
import { TestRedis } from './helpers/redis-server.js'
import { Subscriber } from './helpers/subscriber.js'
import { startToolsGateway, tool } from './helpers/tools.js'

/*
 * The dashboard page in real headless Chromium (Debian's, driven by playwright-core), against a gateway process and
 * calls that rtaa-sim plays, as an operator would watch them.
 */

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

const SECRET = 'dashboard-browser-secret-of-32-bytes-long'

/**
 * What the functions run in the page see (the tests are compiled without the DOM's types). Playwright runs them
 * through the DevTools protocol: the page's Content Security Policy, which refuses eval, does not apply to them.
 */
declare const document: { querySelector (selector: string): { textContent: string | null, getAttribute (name: string): string | null } | null }
declare const window: { rtaaDashboard: { listening: { samples: number, peak: number } | null } }

t.test('the page shows each call with its vendor and rate, its counters rising, the simulator\'s gap, listen-in, and the call ending; access and tenancy hold', async (t) => {
  const gateway = await startToolsGateway(t, redis.url, {
    LOG_LEVEL: 'info',
    DASHBOARD_LISTEN: 'true',
    TRUST_PROXY: '127.0.0.1/32',
    JWT_SECRET: SECRET,
    BASIC_AUTH_CREDENTIALS: 'keyOne:tokenOne-secret,keyTwo:tokenTwo-secret',
    BASIC_AUTH_ACCOUNTS: 'keyOne=ACone,keyTwo=ACtwo'
  })
  const subscriber = await Subscriber.start(t, redis.url, gateway.prefix)
  const browser = await launchBrowser(t)
  const page = await browser.newPage()
  const problems: string[] = []
  page.on('pageerror', (err) => problems.push(err.message))
  t.equal((await page.goto(`${gateway.url}/dashboard`))?.status(), 200, 'loopback opens the page')
  await page.locator('#status', { hasText: 'live' }).waitFor()

  const dir = mkdtempSync(join(tmpdir(), 'rtaa-dashboard-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // A tenant's token, minted as the README says (rtaa-token --scope dashboard), before the calls begin.
  const minted = await tool('rtaa-token', ['--tenant', 'ACone', '--subject', 'acme-ops', '--scope', 'dashboard'], dir, { JWT_SECRET: SECRET }).done
  t.equal(minted.code, 0, 'rtaa-token mints a dashboard token')
  const token = minted.stdout.trim()
  const sim = (args: string[]): ReturnType<typeof tool> => tool('rtaa-sim', ['--duration', '8', '--ramp-ms', '0', ...args], dir)
  const runs = [
    // Exotel at 16 kHz for ACone, five chunks left out halfway; Twilio at 8 kHz, its account unverified; ACtwo's call.
    sim(['--url', `${gateway.wsUrl}/v1/ingest?sample-rate=16000`, '--calls', '2', '--gap', '5', '--basic', 'keyOne:tokenOne-secret', '--account', 'ACone', '--call-prefix', 'ex']),
    sim(['--url', `${gateway.wsUrl}/v1/ingest`, '--vendor', 'twilio', '--call-prefix', 'tw']),
    sim(['--url', `${gateway.wsUrl}/v1/ingest?sample-rate=8000`, '--basic', 'keyTwo:tokenTwo-secret', '--account', 'ACtwo', '--call-prefix', 'two'])
  ]

  const live = (id: string, field: string): ReturnType<Page['locator']> => page.locator(`#live tr[data-interaction-id="${id}"] td[data-field="${field}"]`)
  for (const [id, vendor, rate, tenant] of [['ex-1', 'exotel', '16000', 'ACone'], ['ex-2', 'exotel', '16000', 'ACone'], ['tw-1', 'twilio', '8000', 'ACsimulator (unverified)'], ['two-1', 'exotel', '8000', 'ACtwo']]) {
    await live(id, 'vendor').waitFor()
    t.equal(await live(id, 'vendor').textContent(), vendor, `${id}: its vendor`)
    t.equal(await live(id, 'rate').textContent(), rate, `${id}: its rate`)
    t.equal(await live(id, 'tenant').textContent(), tenant, `${id}: its tenant`)
  }

  // Listen-in to ACtwo's call: the page plays what the gateway streams, and counts the samples.
  await page.locator('#live tr[data-interaction-id="two-1"]').click()
  await page.locator('#detail [data-track="inbound"] button', { hasText: 'Listen' }).click()
  await page.waitForFunction(() => Number(document.querySelector('#listen-status')?.getAttribute('data-samples') ?? 0) >= 8000)
  const heard = await page.evaluate(() => window.rtaaDashboard.listening)
  t.ok((heard?.samples ?? 0) >= 8000, `a second of audio arrived in the page: ${heard?.samples} samples`)
  t.ok((heard?.peak ?? 0) > 0.1, 'and it is the tone, not silence')
  t.ok(await page.locator('#detail canvas').first().isVisible(), 'the call view draws its level history')

  // Counters rise as frames come in; levels show for the watched calls.
  const framesOf = async (id: string): Promise<number> => Number(await live(id, 'frames').textContent())
  const before = await framesOf('ex-1')
  await page.waitForFunction((frames) => Number(document.querySelector('#live tr[data-interaction-id="ex-1"] td[data-field="frames"]')?.textContent) > frames + 20, before)
  t.ok(await framesOf('ex-1') > before, 'the frame count rises')
  t.ok(Number(await live('ex-1', 'fps').textContent()) > 0, 'frames per second')
  t.match(await page.locator('#live tr[data-interaction-id="ex-1"] .meter').getAttribute('data-db'), /^-\d/, 'a level meter in dBFS')

  // The simulator's gap: five chunks left out halfway through each Exotel call.
  await page.locator('#live tr[data-interaction-id="ex-1"] td[data-field="gaps"]', { hasText: '5' }).waitFor()
  t.equal(await live('ex-1', 'gaps').textContent(), '5', 'the gap shows as it happens')

  // Tenancy and access, in pages of their own while the calls live.
  const outsider = await browser.newContext({ extraHTTPHeaders: { 'x-forwarded-for': '203.0.113.9' } })
  t.teardown(() => outsider.close())
  const refused = await (await outsider.newPage()).goto(`${gateway.url}/dashboard`)
  t.equal(refused?.status(), 403, 'a client outside DASHBOARD_ALLOWLIST gets 403')
  const tenantPage = await outsider.newPage()
  t.equal((await tenantPage.goto(`${gateway.url}/dashboard?access_token=${token}`))?.status(), 200, 'with a JWT it may open the page')
  await tenantPage.locator('#live tr[data-interaction-id="ex-1"]').waitFor()
  t.same(await tenantPage.locator('#live tbody tr').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-interaction-id')).sort()), ['ex-1', 'ex-2'],
    'a JWT for ACone sees ACone\'s calls only')
  t.equal(await tenantPage.locator('#viewer').textContent(), 'jwt:acme-ops@ACone · tenant ACone')
  t.notOk(tenantPage.url().includes('access_token'), 'the token is taken out of the address bar')

  for (const run of runs) t.equal((await run.done).code, 0, 'the simulator completed its calls')
  for (const id of ['ex-1', 'tw-1']) {
    const stop = await subscriber.waitForEvent('call.stop', id) as CallStopEvent
    const ended = page.locator(`#ended tr[data-interaction-id="${id}"] td[data-field="reason"]`)
    await ended.waitFor()
    t.equal(await ended.textContent(), stop.reason, `${id} moved to the ended calls with call.stop's reason`)
    t.equal(await page.locator(`#live tr[data-interaction-id="${id}"]`).count(), 0, `${id} left the live calls`)
  }
  t.equal(await page.locator('#ended tr[data-interaction-id="ex-1"] td[data-field="gaps"]').textContent(), '5', 'with its totals')
  t.match(await page.locator('#listen-status').textContent(), /listen-in ended/, 'the listen-in ended with its call')
  t.same(problems, [], 'no script error on the page')
})
