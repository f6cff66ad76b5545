/**
 * Open-loop load: N provider-shaped Exotel calls, each sending a media frame every frameMs on an absolute schedule
 * (a random phase per call, or all aligned: the worst case; "bunching" holds 10 % of calls' frames for 200 ms and
 * releases them at once). Frames go at their intended time whatever the server does, so a slow server shows as
 * latency, not as a slower client. Prints one JSON summary line.
 */
import hdr from 'hdr-histogram-js'
import WebSocket from 'ws'
import { MediaFrames, openingMessages } from './exotel-frames.js'
import { nowNs, stamp } from './frame-stamp.js'
import { exitWithParent } from './lifeline.js'

exitWithParent()

interface Options {
  url: string
  calls: number
  sampleRate: number
  frameMs: number
  seconds: number
  mode: 'random' | 'aligned' | 'bunching'
  callPrefix: string
}

const options = JSON.parse(process.argv[2]) as Options
const frameBytes = (options.sampleRate * 2 * options.frameMs) / 1000
const frames = Math.floor((options.seconds * 1000) / options.frameMs)
const lateness = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
const template = Buffer.alloc(frameBytes)
for (let i = 0; i < frameBytes / 2; i++) template.writeInt16LE(Math.round(6000 * Math.sin(i / 7)), i * 2)
const payload = template.toString('base64')
// Base64 encodes 3 bytes at a time, so the stamp's 16 bytes live in the first 18: only those are encoded per frame,
// into each call's message, built once (MediaFrames); the rest of the payload is the same for every frame.
const head = Buffer.from(template.subarray(0, MediaFrames.HEAD_BYTES))
// The counters' fixed width: enough for the largest sequence number and timestamp of the step.
const digits = String(Math.max(frames + 1, frames * options.frameMs)).length
let sent = 0
let failures = 0
/** Frames written into a fresh copy of their call's message, because the previous one was still queued. */
let copies = 0

async function connect (index: number): Promise<WebSocket | null> {
  // A zero mask: ws (8.x, lib/sender.js) then skips masking, and sends a Buffer as it is, without a masked copy.
  // RFC 6455 wants a random mask from clients, against proxies' cache poisoning; on loopback to a test server there
  // is no proxy, and the server unmasks the same either way.
  const ws = new WebSocket(`${options.url}?sample-rate=${options.sampleRate}`, { perMessageDeflate: false, generateMask: (mask) => mask.fill(0) })
  const ok = await new Promise<boolean>((resolve) => {
    ws.once('open', () => resolve(true))
    ws.once('error', () => resolve(false))
  })
  if (!ok) {
    failures++
    return null
  }
  const sid = `MZ${options.callPrefix}${index}`
  for (const message of openingMessages(`${options.callPrefix}-${index}`, sid, options.sampleRate)) ws.send(message)
  return ws
}

const sockets: Array<WebSocket | null> = []
for (let i = 0; i < options.calls; i++) {
  sockets.push(await connect(i))
  if (i % 20 === 19) await new Promise((resolve) => setTimeout(resolve, 100)) // at most ~200 new calls a second
}

const cpuBefore = process.cpuUsage()
const t0 = nowNs() + 300e6
const frameNs = options.frameMs * 1e6
const done: Array<Promise<void>> = sockets.map((ws, index) => new Promise((resolve) => {
  if (ws === null) return resolve()
  const phase = options.mode === 'aligned' ? 0 : Math.random() * frameNs
  const bunched = options.mode === 'bunching' && index % 10 === 0
  const sid = `MZ${options.callPrefix}${index}`
  const messages = new MediaFrames(sid, options.frameMs, digits, payload)
  let k = 0
  const sendDue = (): void => {
    const now = nowNs()
    // A bunched call holds its frames for the first 200 ms of every second, then sends what is due at once.
    const held = bunched && ((now - t0) / 1e6) % 1000 < 200
    const sendable = held ? k : frames
    while (k < sendable && t0 + phase + k * frameNs <= now) {
      const intended = t0 + phase + k * frameNs
      stamp(head, index, k + 1, intended)
      // Sent as text from the Buffer. Unmasked, ws hands the Buffer itself to the socket: if anything is still queued
      // there (possibly the previous frame), this frame is patched into a copy, not into bytes yet to be written.
      const queued = ws.bufferedAmount > 0
      if (queued) copies++
      ws.send(messages.frame(k, head, queued), { binary: false })
      if (!bunched) lateness.recordValue(Math.max(1, Math.round((nowNs() - intended) / 1000)))
      sent++
      k++
    }
    if (k >= frames) {
      ws.send(JSON.stringify({ event: 'stop', stream_sid: sid, stop: { reason: 'callended' } }))
      ws.once('close', () => resolve())
      setTimeout(() => { ws.terminate(); resolve() }, 5000).unref()
      return
    }
    setTimeout(sendDue, Math.max(0, (t0 + phase + k * frameNs - nowNs()) / 1e6))
  }
  setTimeout(sendDue, Math.max(0, (t0 + phase - nowNs()) / 1e6))
}))
await Promise.all(done)
const cpu = process.cpuUsage(cpuBefore)
process.stdout.write(`${JSON.stringify({
  frames_sent: sent,
  connect_failures: failures,
  lateness_p99_ms: lateness.getValueAtPercentile(99) / 1000,
  client_cpu_pct: ((cpu.user + cpu.system) / 1000 / (options.seconds * 1000 + 300)) * 100,
  message_copies: copies
})}\n`)
process.exit(0)
