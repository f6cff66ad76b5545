import { encodeL16 } from '../../audio/l16.js'
import { decodeMulaw, encodeMulaw } from '../../audio/mulaw.js'
import type { Track } from '../inbound-event.js'
import { hearMediaAndMarks, type SimulatedCall, type VendorSimulator } from '../vendor-simulator.js'
import { TELNYX_TOKEN_HEADER } from './telnyx-messages.js'

/**
 * Telnyx's messages as its docs show them (https://developers.telnyx.com/docs/voice/programmable-voice/media-streaming):
 * PCMU at 8 kHz, L16 at 16 kHz. Playback is heard as PCMU at 8 kHz, the gateway's default TELNYX_PLAYBACK_CODEC.
 */
export const telnyxSimulator: VendorSimulator = {
  sampleRates: [8000, 16000],
  defaultSampleRate: 8000,
  chunkMs: 20,
  bothTracks: true,
  // A gateway with TELNYX_STREAM_AUTH_TOKEN admits Telnyx by the token's header only.
  signing: {
    option: 'telnyx-stream-auth-token',
    setting: 'TELNYX_STREAM_AUTH_TOKEN',
    headers: (_url, token) => ({ [TELNYX_TOKEN_HEADER]: token })
  },
  // Telnyx's start does not list the tracks: the stream URL names them, as stream_track does.
  url: (url, _sampleRate, tracks) => (tracks.length === 1 || /[?&]track=/.test(url) ? url : `${url}${url.includes('?') ? '&' : '?'}track=both_tracks`),

  call (callId: string, sampleRate: number, accountId: string): SimulatedCall {
    const streamId = `32de0dea-${callId}`
    const l16 = sampleRate !== 8000
    const opening = [
      { event: 'connected', version: '1.0.0' },
      {
        event: 'start',
        sequence_number: '1',
        start: {
          user_id: accountId,
          call_control_id: `v3:${callId}`,
          call_session_id: callId,
          from: '+13122010094',
          to: '+13122123456',
          tags: ['rtaa-sim'],
          client_state: 'aGF2ZSBhIG5pY2UgZGF5ID1d',
          custom_parameters: { simulator: 'rtaa-sim' },
          media_format: { encoding: l16 ? 'L16' : 'PCMU', sample_rate: sampleRate, channels: 1 }
        },
        stream_id: streamId
      }
    ]
    let seq = opening.length
    const next = (): string => String(++seq)
    return {
      opening,
      media: (chunk: number, timestampMs: number, pcm: Buffer, track: Track) => ({
        event: 'media',
        sequence_number: next(),
        media: { track, chunk: String(chunk), timestamp: String(timestampMs), payload: (l16 ? encodeL16(pcm) : encodeMulaw(pcm)).toString('base64') },
        stream_id: streamId
      }),
      dtmf: (digit) => ({ event: 'dtmf', stream_id: streamId, occurred_at: new Date().toISOString(), sequence_number: next(), dtmf: { digit } }),
      stop: () => ({ event: 'stop', sequence_number: next(), stop: { user_id: accountId, call_control_id: `v3:${callId}` }, stream_id: streamId }),
      hear: (message) => hearMediaAndMarks(message, decodeMulaw, (name) => ({ event: 'mark', stream_id: streamId, sequence_number: next(), mark: { name } })),
      playbackRate: 8000
    }
  }
}
