/**
 * The floor: the least a server can do and still put every frame on Redis where the latency sink finds it. ws +
 * ioredis, nothing parsed on the frame path, and Redis written the gateway's cheapest way (each frame one whole
 * PUBLISH command in one buffer, what a turn of the event loop writes corked into one write: src/bus/transports.ts).
 * It shows what moving the bytes costs (WebSocket in, Redis out, on this machine), so the other variants can be
 * stated as a fraction of it.
 *
 * What it does. Per call, at `start`, it parses that one message (JSON.parse, once a call) for the call and account
 * ids, names the call's audio channel as the baseline does, and encodes one audio message in the gateway's format
 * (encodeAudioFrame: 4-byte big-endian header length, JSON header, PCM) with as many PCM bytes as the load
 * generator's frames carry (the URL's sample-rate and BENCH_FRAME_MS), inside its PUBLISH command. For each media
 * message it finds the payload with indexOf on the raw bytes, decodes only the 24 base64 characters that hold the
 * 16-byte stamp (bench/frame-stamp.ts) into a fresh copy of that command, and sends the copy. A copy per frame,
 * because ioredis holds the buffer until it is written. `stop` closes with 1000; `connected` is ignored.
 *
 * What it does not do. It validates nothing (no schema, no check of the JSON beyond the bytes it reads), decodes no
 * audio beyond the stamp, keeps no counters, and publishes a header that is the same for every frame of a call (seq,
 * vendor_seq and timestamp_ms do not move) with the template's PCM after the stamp. It publishes no call events: the
 * pub/sub sink needs none. It has no Streams mode and no workers. It recognises messages by their first bytes, which
 * holds for the load generator's messages and for nothing else in general. It is a measuring stick, not a server.
 */
import { Redis } from 'ioredis'
import { WebSocketServer } from 'ws'
import { audioChannel } from '../src/bus/channels.js'
import { pubSubTransport } from '../src/bus/transports.js'

const port = Number(process.env.PORT ?? 8444)
const prefix = process.env.REDIS_PREFIX ?? 'rtaa:'
const frameMs = Number(process.env.BENCH_FRAME_MS ?? 20)
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
const transport = pubSubTransport(prefix, false)
let corked = false

/** The gateway's batching (RedisBus): what one turn of the event loop writes goes out in one write. */
function batchWrites (): void {
  if (corked) return
  corked = true
  redis.stream.cork()
  setImmediate(() => {
    corked = false
    redis.stream.uncork()
  })
}
const server = new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate: false, maxPayload: 64 * 1024 })

/** Every message the load generator sends starts so; the next byte names the event. */
const EVENT = Buffer.from('{"event":"')
const PAYLOAD = Buffer.from('"payload":"')
const STAMP_BYTES = 16
/** Base64 holds 3 bytes in 4 characters: the stamp's 16 bytes are in the first 24 characters (18 bytes). */
const STAMP_CHARS = 24
const BASE64 = new Int16Array(256).fill(-1)
for (const [index, char] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].entries()) BASE64[char.charCodeAt(0)] = index

/** Decodes the stamp from `data` (base64 from `from`) into `into` at `at`; false if a character is not base64. */
function decodeStamp (data: Buffer, from: number, into: Buffer, at: number): boolean {
  for (let group = 0; group < STAMP_CHARS / 4; group++) {
    const c = from + group * 4
    const a = BASE64[data[c]]
    const b = BASE64[data[c + 1]]
    const d = BASE64[data[c + 2]]
    const e = BASE64[data[c + 3]]
    if ((a | b | d | e) < 0) return false
    const bits = (a << 18) | (b << 12) | (d << 6) | e
    const out = at + group * 3
    into[out] = bits >> 16
    into[out + 1] = (bits >> 8) & 0xff
    // The sixth group's last two bytes are past the stamp: the template's PCM stays there.
    if (group * 3 + 2 < STAMP_BYTES) into[out + 2] = bits & 0xff
  }
  return true
}

server.on('connection', (socket, request) => {
  const sampleRate = Number(new URL(request.url ?? '/', 'http://x').searchParams.get('sample-rate') ?? 8000)
  const pcmBytes = (sampleRate * 2 * frameMs) / 1000
  let template: Buffer | null = null
  let pcmAt = 0
  let channel = ''
  socket.on('message', (data: Buffer) => {
    if (data.length <= EVENT.length + 2 || data.compare(EVENT, 0, EVENT.length, 0, EVENT.length) !== 0) return socket.close(1007)
    const first = data[EVENT.length]
    if (first === 0x6d) { // m: media
      if (template === null) return
      const at = data.indexOf(PAYLOAD, EVENT.length) + PAYLOAD.length
      const message = Buffer.allocUnsafe(template.length)
      template.copy(message)
      if (at < PAYLOAD.length || at + STAMP_CHARS > data.length || !decodeStamp(data, at, message, pcmAt)) return socket.close(1007)
      batchWrites()
      // No handler per publish, as the baseline: a refused one is the sink's to count.
      transport.writeEncoded(redis, channel, message).catch(() => {})
    } else if (first === 0x73 && data[EVENT.length + 2] === 0x61) { // s?a: start, the one message parsed
      const { start } = JSON.parse(data.toString()) as { start: { call_sid: string, account_sid?: string } }
      const tenant = start.account_sid ?? null
      channel = audioChannel(prefix, { tenantId: tenant, tenantVerified: false, interactionId: start.call_sid })
      const encoder = transport.frameEncoder(channel, { interaction_id: start.call_sid, tenant_id: tenant, sample_rate: sampleRate, encoding: 'pcm_s16le', channels: 1 })
      if (encoder === null) throw new Error('pub/sub encodes frames')
      template = encoder.frame(1, null, 0, pcmBytes)
      pcmAt = template.length - encoder.trailerBytes - pcmBytes
      template.fill(0, pcmAt, pcmAt + pcmBytes)
    } else if (first === 0x73) { // s?o: stop
      socket.close(1000)
    }
  })
})
server.on('listening', () => process.stdout.write('listening\n'))
// A normal exit, so node --cpu-prof writes its profile.
process.on('SIGTERM', () => process.exit(0))
