import t from 'tap'
import { AudioFrameEncoder, encodeAudioFrame, type AudioFrameHeader } from '../src/bus/audio-frame.js'
import { pubSubTransport } from '../src/bus/transports.js'
import { createExotelAdapter } from '../src/vendors/exotel/exotel-adapter.js'
import { newMediaScan, type MediaScan } from '../src/vendors/media-scanner.js'
import type { InboundEvent } from '../src/vendors/inbound-event.js'
import type { MediaFastPath } from '../src/vendors/vendor-adapter.js'
import { fuzzConnections, prng } from './helpers/fuzz-messages.js'
import { TestRedis } from './helpers/redis-server.js'
import { startListenedGateway } from './helpers/gateway.js'
import { ProviderClient, exotelStrings, pcmFrame } from './helpers/exotel.js'

/*
 * The frame path reads Exotel media from its bytes (src/vendors/media-scanner.ts) and writes each frame's header from
 * bytes encoded once per call (AudioFrameEncoder). Both must agree with the full path: the fast reading vouches only
 * for what the decoder accepts, with the same counters and PCM, and the encoder writes encodeAudioFrame's bytes.
 */
const SEED = 20261201

const decoder = createExotelAdapter(8000).createDecoder({ principal: { method: 'ip', ip: '127.0.0.1' }, sampleRate: 8000 })
const fast = decoder.fast as MediaFastPath

type Verdict = { accepted: true, event: InboundEvent } | { accepted: false }

function fullPath (data: Buffer): Verdict {
  try {
    return { accepted: true, event: decoder.decode(data, false, false).event }
  } catch {
    return { accepted: false }
  }
}

/** The fast path's reading of a message: its counters and PCM, or null where it leaves the message to decode. */
function fastRead (data: Buffer): { scan: MediaScan, pcm: Buffer } | null {
  const scan = newMediaScan()
  if (!fast.scan(data, scan)) return null
  const target = Buffer.alloc(((scan.payloadEnd - scan.payloadStart) * 3) >>> 2, 0xa5)
  const bytes = fast.decodePcm(data, scan, target)
  return bytes < 0 ? null : { scan, pcm: target.subarray(0, bytes) }
}

/** Whether the fast reading agrees with the full path on one message: null when it does, else why not. */
function disagreement (data: Buffer): string | null {
  const read = fastRead(data)
  if (read === null) return null
  const { scan, pcm } = read
  const full = fullPath(data)
  if (!full.accepted) return 'vouched for a message the full path refuses'
  const { event } = full
  if (event.kind !== 'media') return `vouched for a ${event.kind} message`
  if (event.vendorSeq !== scan.vendorSeq || event.timestampMs !== scan.timestampMs || (event.chunk ?? null) !== scan.chunk) {
    return `counters differ: ${JSON.stringify([event.vendorSeq, event.timestampMs, event.chunk])} against ${JSON.stringify([scan.vendorSeq, scan.timestampMs, scan.chunk])}`
  }
  if (!pcm.equals(event.pcm)) return 'PCM differs'
  return null
}

/** Valid media messages in the shapes Exotel's docs and real traffic show, and then some: the fast path's domain. */
function validMedia (random: () => number): string {
  const int = (max: number): number => Math.floor(random() * max)
  const pick = <T>(items: T[]): T => items[int(items.length)]
  const counter = (): unknown => (random() < 0.5 ? int(1e6) : String(int(1e6)))
  const pcm = pcmFrame(2 * int(200), int(1000))
  let payload = pcm.toString(random() < 0.2 ? 'base64url' : 'base64')
  if (random() < 0.2) payload = payload.replace(/=+$/, '')
  const media: Array<[string, unknown]> = [['payload', payload]]
  if (random() < 0.8) media.push(['chunk', counter()])
  if (random() < 0.8) media.push(['timestamp', counter()])
  if (random() < 0.2) media.push([pick(['track', 'x_extra', 'payload_type']), pick(['inbound', 7, true, null, 'a b'])])
  const top: Array<[string, unknown]> = [['event', 'media'], ['media', 'MEDIA']]
  if (random() < 0.8) top.push(['sequence_number', counter()])
  if (random() < 0.8) top.push(['stream_sid', `MZ${int(1e9)}`])
  if (random() < 0.2) top.push([pick(['account_sid', 'x', 'flags']), pick(['AC1', 0, false, null])])
  const shuffled = <T>(items: T[]): T[] => items.map((item) => [random(), item] as const).sort((a, b) => a[0] - b[0]).map(([, item]) => item)
  const space = (): string => (random() < 0.15 ? pick([' ', '\n', '\t', '\r\n  ']) : '')
  const object = (entries: Array<[string, unknown]>, nested: string): string =>
    `${space()}{${shuffled(entries).map(([key, value]) => `${space()}${JSON.stringify(key)}${space()}:${space()}${value === 'MEDIA' ? nested : JSON.stringify(value)}${space()}`).join(',')}}${space()}`
  return object(top, object(media, ''))
}

/** A valid message bent once: the kinds of change a parser gets wrong. */
function bent (random: () => number, message: string): string {
  const int = (max: number): number => Math.floor(random() * max)
  const at = int(message.length)
  const edits: Array<() => string> = [
    () => message.slice(0, at),
    () => `${message.slice(0, at)}${message.slice(at + 1)}`,
    () => `${message.slice(0, at)}${String.fromCharCode(int(128))}${message.slice(at + 1)}`,
    () => `${message.slice(0, at)}${'",:{}[]\\-.e0 9'[int(15)]}${message.slice(at)}`,
    () => `${message}${[' ', 'x', '{}', ',', '\u00e9'][int(5)]}`,
    () => message.replace('"sequence_number":', '"sequence_number":-').replace('"chunk":"', '"chunk":"0x'),
    () => message.replace(/"(\d+)"/, '"$1.0"').replace(/:(\d+)/, ':$1.5'),
    () => message.replace(/:(\d+)/, ':0$1').replace(/:(\d)/, ':1e$1'),
    () => message.replace('"event":"media"', '"event":"media","event":"media"'),
    () => message.replace('"media":{', '"media":{"payload":"AAAA",'),
    () => message.replace('"stream_sid":"', '"stream_sid":"\\u0041').replace('"payload":"', '"payload":"\\/'),
    () => message.replace('"stream_sid":"', `"stream_sid":"${'s'.repeat(250)}`),
    () => message.replace(/"payload":"[^"]{2}/, '"payload":"==').replace(/"payload":"([^"]*)"/, '"payload":"$1A"'),
    () => message.replace('"media":{', '"media":{"extra":[1],').replace('"event"', '"nested":{"a":1},"event"'),
    () => message.replace(/"(sequence_number|chunk|timestamp)":("?\d+"?)/, '"$1":$2$2'),
    () => message.replace(/"(sequence_number|chunk|timestamp)":"?\d+"?/, '"$1":1234567890123456'),
    () => message.replace(/"(sequence_number|chunk|timestamp)":"?\d+"?/, '"$1":null'),
    () => message.replace('"media"', '"Media"').replace('"event":"media"', '"event":"Media"'),
    () => `\ufeff${message}`
  ]
  return edits[int(edits.length)]()
}

t.test('the fast reading of Exotel media agrees with the full path: the same accept or reject, the same counters and PCM', async (t) => {
  const random = prng(SEED)
  const failures: string[] = []
  let vouched = 0
  let messages = 0
  const check = (data: Buffer): void => {
    messages++
    const problem = disagreement(data)
    if (problem !== null && failures.length < 5) failures.push(`${problem}: ${JSON.stringify(data.toString('latin1').slice(0, 200))}`)
    if (fastRead(data) !== null) vouched++
  }

  // The fuzz corpus (test/fuzz.test.ts), text frames only: the fast path never sees a binary one.
  const corpus = fuzzConnections(random, 8192)
  for (let i = 0; i < 3000; i++) {
    for (const frame of corpus()) if (!frame.binary) check(Buffer.isBuffer(frame.data) ? frame.data : Buffer.from(frame.data))
  }
  const fromCorpus = vouched
  // Valid media in many shapes: the fast path must vouch for every one (they are what it is for) ...
  let validVouched = 0
  const VALID = 20_000
  for (let i = 0; i < VALID; i++) {
    const data = Buffer.from(validMedia(random))
    const before = vouched
    check(data)
    if (vouched > before) validVouched++
    // ... and each bent once, where it must still never vouch for what the full path refuses.
    check(Buffer.from(bent(random, data.toString())))
  }

  t.same(failures, [], `${messages} messages, ${vouched} read by the fast path, none differently from the full path`)
  t.ok(fromCorpus > 0, `the corpus's valid media (${fromCorpus}) went the fast way`)
  t.equal(validVouched, VALID, 'every valid media message of the generated shapes is read by the fast path')
})

t.test('an audio message written from a header encoded once has encodeAudioFrame\'s bytes', async (t) => {
  const random = prng(SEED + 1)
  const int = (max: number): number => Math.floor(random() * max)
  const pick = <T>(items: T[]): T => items[int(items.length)]
  const failures: string[] = []
  for (let i = 0; i < 20_000; i++) {
    const header: AudioFrameHeader = {
      interaction_id: pick(['CA1', `CA${int(1e12)}`, 'a.b:c@d+e-f_g', 'x'.repeat(128)]),
      tenant_id: pick([null, 'acme', `t-${int(1e6)}`]),
      seq: pick([1, int(1e6), 2 ** 31 + int(1e6), Number.MAX_SAFE_INTEGER]),
      vendor_seq: pick([null, 0, int(1e6), 999_999_999_999_999, 1e21, Number.NaN]),
      timestamp_ms: pick([0, int(1e9), 2 ** 40, Number.POSITIVE_INFINITY]),
      sample_rate: pick([8000, 16000, 24000, 44100]),
      encoding: 'pcm_s16le',
      channels: 1
    }
    if (random() < 0.3) header.track = pick(['inbound', 'outbound'])
    const pcm = pcmFrame(2 * int(400), i)
    const encoder = new AudioFrameEncoder(header)
    const message = encoder.frame(header.seq, header.vendor_seq, header.timestamp_ms, pcm.length)
    pcm.copy(message, message.length - pcm.length)
    const expected = encodeAudioFrame(header, pcm)
    if (!message.equals(expected) && failures.length < 5) failures.push(`${JSON.stringify(header)}: ${message.subarray(0, 120).toString()} against ${expected.subarray(0, 120).toString()}`)
    // On one Redis the same message goes out inside its PUBLISH command, written in the same buffer.
    const channel = `rtaa:audio:{${header.tenant_id ?? '~'}:${header.interaction_id}}`
    const publisher = pubSubTransport('rtaa:', false).frameEncoder(channel, header) as AudioFrameEncoder
    const command = publisher.frame(header.seq, header.vendor_seq, header.timestamp_ms, pcm.length)
    pcm.copy(command, command.length - publisher.trailerBytes - pcm.length)
    const resp = Buffer.concat([Buffer.from(`*3\r\n$7\r\nPUBLISH\r\n$${channel.length}\r\n${channel}\r\n$${expected.length}\r\n`), expected, Buffer.from('\r\n')])
    if (!command.equals(resp) && failures.length < 5) failures.push(`${JSON.stringify(header)} as a command: ${command.subarray(0, 160).toString()}`)
  }
  t.same(failures, [], '20,000 headers, byte for byte, as messages and as PUBLISH commands')
})

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

t.test('on Redis, the fast path\'s frames are the full path\'s, byte for byte', async (t) => {
  // LOG_LEVEL=debug sends every message through the full path (it names unknown fields); info takes the fast one.
  const sent = Array.from({ length: 30 }, (_, i) => pcmFrame(320, i))
  const framesAt = async (level: string): Promise<Buffer[]> => {
    const { gateway, subscriber } = await startListenedGateway(t, redis.url, { LOG_LEVEL: level })
    // Ids of one length, so the two calls' messages differ only in the id's characters, which are then replaced.
    const call = `CAfastpath${level.slice(0, 3)}`
    const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=8000`)
    client.send(exotelStrings.start(call))
    sent.forEach((pcm, i) => client.send(exotelStrings.media(`MZ${call}`, i + 2, i + 1, i * 20, pcm)))
    // One frame without a timestamp: the gateway derives it from the audio so far, on either path.
    client.send({ event: 'media', sequence_number: 40, stream_sid: `MZ${call}`, media: { chunk: 31, payload: pcmFrame(320, 99).toString('base64') } })
    client.send(exotelStrings.stop(call, `MZ${call}`, 41))
    await subscriber.waitForEvent('call.stop', call)
    return subscriber.rawFrames(call).map((frame) => Buffer.from(frame.toString('latin1').replaceAll(call, 'CALL'), 'latin1'))
  }
  const full = await framesAt('debug')
  const fastFrames = await framesAt('info')
  t.equal(full.length, 31, 'every frame arrived')
  t.same(fastFrames.map((frame) => frame.toString('hex')), full.map((frame) => frame.toString('hex')), 'the same bytes')
})
