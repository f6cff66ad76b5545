/**
 * The hand-written baseline: ws + ioredis, no Fastify, no logging, no auth, no metrics. It imports the gateway's
 * Exotel schemas and decoder and its Redis frame encoding, so validation and Redis I/O are the gateway's own; what
 * differs is everything around them.
 */
import { Redis } from 'ioredis'
import { WebSocketServer } from 'ws'
import { createExotelAdapter } from '../src/vendors/exotel/exotel-adapter.js'
import { encodeAudioFrame } from '../src/bus/audio-frame.js'
import { audioChannel, callsChannel } from '../src/bus/channels.js'

// BASELINE_BALLAST_MB keeps that much of small live objects on the heap: an experiment on what the gateway's larger
// heap (more code, more per-call state) costs in garbage-collection pauses, with nothing else changed.
const ballast = Array.from({ length: Math.round(Number(process.env.BASELINE_BALLAST_MB ?? 0) * 2 ** 20 / 64) }, (_, index) => ({ index, next: null as unknown }))
ballast.forEach((item, index) => { item.next = ballast[(index * 7919) % ballast.length] })

const port = Number(process.env.PORT ?? 8444)
const prefix = process.env.REDIS_PREFIX ?? 'rtaa:'
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { enableAutoPipelining: true })
const adapter = createExotelAdapter(16000)
const server = new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate: false, maxPayload: 64 * 1024 })

server.on('connection', (socket, request) => {
  const sampleRate = Number(new URL(request.url ?? '/', 'http://x').searchParams.get('sample-rate') ?? 8000)
  const decoder = adapter.createDecoder({ principal: { method: 'ip', ip: '127.0.0.1' }, sampleRate })
  let id: string | null = null
  let tenant: string | null = null
  let channel = ''
  let seq = 0
  socket.on('message', (data, isBinary) => {
    try {
      const { event } = decoder.decode(data as Buffer, isBinary, false)
      if (event.kind === 'start') {
        id = event.start.callId
        tenant = event.start.accountId
        channel = audioChannel(prefix, { tenantId: tenant, tenantVerified: false, interactionId: id })
        // eslint-disable-next-line no-void -- as lean as a hand-written server gets: no handler per publish
        void redis.publish(callsChannel(prefix), JSON.stringify({ type: 'call.start', interaction_id: id }))
      } else if (event.kind === 'media' && id !== null) {
        const header = { interaction_id: id, tenant_id: tenant, seq: ++seq, vendor_seq: event.vendorSeq, timestamp_ms: event.timestampMs ?? 0, sample_rate: sampleRate, encoding: 'pcm_s16le' as const, channels: 1 as const }
        // eslint-disable-next-line no-void -- as above
        void redis.publish(channel, encodeAudioFrame(header, event.pcm))
      } else if (event.kind === 'stop') {
        socket.close(1000)
      }
    } catch {
      socket.close(1007)
    }
  })
})
server.on('listening', () => process.stdout.write('listening\n'))
// A normal exit, so node --cpu-prof writes its profile.
process.on('SIGTERM', () => process.exit(0))
