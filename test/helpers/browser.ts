import { chromium, type Browser } from 'playwright-core'
import type { Test } from 'tap'

/** Debian's chromium (apt-get install chromium; .ci/run installs it), or the one CHROMIUM_PATH names. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/**
 * Headless Chromium, closed when the test ends. Without the background-networking flags it keeps trying Google's
 * hosts, which a closed network refuses; audio plays without a click, as a listen-in would after one.
 */
export async function launchBrowser (t: Test): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--autoplay-policy=no-user-gesture-required']
  })
  t.teardown(() => browser.close())
  return browser
}
