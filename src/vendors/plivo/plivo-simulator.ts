import { randomUUID } from 'node:crypto'
import { decodeMulaw, encodeMulaw } from '../../audio/mulaw.js'
import type { SimulatedCall, VendorSimulator } from '../vendor-simulator.js'
import type { PlivoEncoding } from './plivo-adapter.js'
import { signPlivoUpgrade } from './plivo-signature.js'

/**
 * Plivo's messages as its protocol reference shows them
 * (https://plivo.com/docs/voice-agents/audio-streaming/concepts/audio-streaming-reference). At 8 kHz the stream is
 * μ-law, Plivo's recommended format; at 16 kHz it is L16, the only format Plivo streams at that rate.
 */
export const plivoSimulator: VendorSimulator = {
  sampleRates: [8000, 16000],
  defaultSampleRate: 8000,
  // "Each chunk contains approximately 20ms of audio".
  chunkMs: 20,
  // A gateway with PLIVO_AUTH_TOKEN admits Plivo by X-Plivo-Signature-V3 only.
  signing: {
    option: 'plivo-auth-token',
    setting: 'PLIVO_AUTH_TOKEN',
    headers: (url, authToken) => signPlivoUpgrade(authToken, url)
  },
  // <Stream audioTrack="both"> streams the caller's leg and the one Plivo plays to them.
  bothTracks: true,

  call (callId, sampleRate, accountId, tracks): SimulatedCall {
    const encoding: PlivoEncoding = sampleRate === 8000 ? 'audio/x-mulaw' : 'audio/x-l16'
    const mulaw = encoding === 'audio/x-mulaw'
    const streamId = randomUUID()
    const extraHeaders = 'simulator=rtaa-sim'
    // Plivo's media timestamps are Unix milliseconds.
    const startedAt = Date.now()
    let seq = 0
    const next = (): number => ++seq
    return {
      opening: [{
        event: 'start',
        sequenceNumber: next(),
        start: { callId, streamId, accountId, tracks: [...tracks], mediaFormat: { encoding, sampleRate } },
        extra_headers: extraHeaders
      }],
      media: (chunk, timestampMs, pcm, track) => ({
        event: 'media',
        sequenceNumber: next(),
        streamId,
        media: { track, timestamp: String(startedAt + timestampMs), chunk, payload: (mulaw ? encodeMulaw(pcm) : pcm).toString('base64') },
        extra_headers: extraHeaders
      }),
      dtmf: (digit) => ({
        event: 'dtmf', sequenceNumber: next(), streamId, dtmf: { track: 'inbound', digit, timestamp: String(Date.now()) }, extra_headers: extraHeaders
      }),
      stop: () => ({ event: 'stop', sequenceNumber: next(), streamId }),
      hear (message) {
        if (Buffer.isBuffer(message)) return {}
        const body = (key: string): Record<string, unknown> => (typeof message[key] === 'object' && message[key] !== null ? message[key] as Record<string, unknown> : {})
        const { payload } = body('media')
        if (message.event === 'playAudio' && typeof payload === 'string') {
          const audio = Buffer.from(payload, 'base64')
          return { pcm: mulaw ? decodeMulaw(audio) : audio }
        }
        // Plivo answers a checkpoint once the audio before it has played; the simulator at once.
        if (message.event === 'checkpoint' && typeof message.name === 'string') {
          return { reply: { event: 'playedStream', sequenceNumber: next(), streamId, name: message.name } }
        }
        if (message.event === 'clearAudio') return { reply: { event: 'clearedAudio', sequenceNumber: next(), streamId } }
        return {}
      },
      playbackRate: sampleRate
    }
  }
}
