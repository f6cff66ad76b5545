import { randomBytes, randomUUID } from 'node:crypto'
import { encodeMulaw } from '../../audio/mulaw.js'
import type { Track } from '../inbound-event.js'
import type { SimulatedCall, VendorSimulator } from '../vendor-simulator.js'
import { AUDIOHOOK_SAMPLE_RATE } from './audiohook-adapter.js'
import { parseAudioHookCredentials, signAudioHookUpgrade } from './audiohook-signature.js'

/** μ-law silence, for a leg that has run out while the other goes on. */
const MULAW_SILENCE = 0xff

/**
 * Genesys's side of an AudioHook session (https://developer.genesys.cloud/devapps/audiohook/session-walkthrough):
 * the upgrade signed with the first of AUDIOHOOK_CREDENTIALS, `open` offering stereo PCMU (customer and agent) and
 * mono, binary frames of interleaved μ-law, `close` with reason `end`.
 */
export const audioHookSimulator: VendorSimulator = {
  sampleRates: [AUDIOHOOK_SAMPLE_RATE],
  defaultSampleRate: AUDIOHOOK_SAMPLE_RATE,
  chunkMs: 100,
  signing: {
    option: 'audiohook-credentials',
    setting: 'AUDIOHOOK_CREDENTIALS',
    // A fresh session, nonce and time for every call, as Genesys signs every connection.
    headers: (url, list) => signAudioHookUpgrade(url, parseAudioHookCredentials(list)[0],
      { sessionId: randomUUID(), correlationId: randomUUID(), nonce: randomBytes(18).toString('base64url'), created: Math.floor(Date.now() / 1000) })
  },
  // Genesys streams both sides of the conversation in one stereo frame.
  bothTracks: true,

  call (callId, _sampleRate, accountId, tracks, upgrade = {}): SimulatedCall {
    // The open names what the signed upgrade did: the organization and the session.
    const organizationId = upgrade['audiohook-organization-id'] ?? accountId
    const id = upgrade['audiohook-session-id'] ?? randomUUID()
    const stereo = tracks.length === 2
    let seq = 0
    let serverseq = 0
    let samples = 0
    let held: Buffer | null = null
    const message = (type: string, parameters: Record<string, unknown>): Record<string, unknown> =>
      ({ version: '2', type, seq: ++seq, serverseq, id, position: `PT${(samples / AUDIOHOOK_SAMPLE_RATE).toFixed(3)}S`, parameters })
    const mono = { type: 'audio', format: 'PCMU', channels: ['external'], rate: AUDIOHOOK_SAMPLE_RATE }
    return {
      opening: [message('open', {
        organizationId,
        conversationId: callId,
        participant: { id: randomUUID(), ani: '+1-555-555-1234', aniName: 'rtaa-sim', dnis: '+1-800-555-6789' },
        media: stereo ? [{ ...mono, channels: ['external', 'internal'] }, mono] : [mono],
        language: 'en-US',
        customConfig: { simulator: 'rtaa-sim' }
      })],
      media (_chunk: number, _timestampMs: number, pcm: Buffer, track: Track) {
        const mulaw = encodeMulaw(pcm)
        if (!stereo) {
          samples += mulaw.length
          return mulaw
        }
        // The customer's chunk waits for the agent's: one frame carries both, interleaved.
        if (track === 'inbound') {
          held = mulaw
          return null
        }
        const external = held ?? Buffer.alloc(0)
        held = null
        const count = Math.max(external.length, mulaw.length)
        const frame = Buffer.alloc(count * 2, MULAW_SILENCE)
        for (let i = 0; i < count; i++) {
          if (i < external.length) frame[i * 2] = external[i]
          if (i < mulaw.length) frame[i * 2 + 1] = mulaw[i]
        }
        samples += count
        return frame
      },
      stop: () => message('close', { reason: 'end' }),
      // Each server message's seq is what the client's next serverseq acknowledges.
      hear (heard) {
        if (!Buffer.isBuffer(heard) && typeof heard.seq === 'number') serverseq = heard.seq
        return {}
      }
    }
  }
}
