import { decodeMulaw, encodeMulaw } from '../../audio/mulaw.js'
import { hearMediaAndMarks, type SimulatedCall, type VendorSimulator } from '../vendor-simulator.js'
import { TWILIO_SAMPLE_RATE } from './twilio-adapter.js'
import { signTwilioUrl } from './twilio-signature.js'

/** Twilio's messages as a logged session shows them (https://github.com/twilio/media-streams). */
export const twilioSimulator: VendorSimulator = {
  sampleRates: [TWILIO_SAMPLE_RATE],
  defaultSampleRate: TWILIO_SAMPLE_RATE,
  chunkMs: 20,
  bothTracks: true,
  // A gateway with TWILIO_AUTH_TOKEN admits Twilio by X-Twilio-Signature only.
  signing: {
    option: 'twilio-auth-token',
    setting: 'TWILIO_AUTH_TOKEN',
    headers: (url, authToken) => ({ 'x-twilio-signature': signTwilioUrl(authToken, url) })
  },

  call (callId: string, _sampleRate: number, accountId: string, tracks): SimulatedCall {
    const sid = `MZ${callId}`
    const opening = [
      { event: 'connected', protocol: 'Call', version: '1.0.0' },
      {
        event: 'start',
        sequenceNumber: '1',
        start: {
          accountSid: accountId,
          streamSid: sid,
          callSid: callId,
          tracks,
          mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: TWILIO_SAMPLE_RATE, channels: 1 },
          customParameters: { simulator: 'rtaa-sim' }
        },
        streamSid: sid
      }
    ]
    let seq = opening.length
    const next = (): string => String(++seq)
    return {
      opening,
      media: (chunk, timestampMs, pcm, track) => ({
        event: 'media', sequenceNumber: next(), media: { track, chunk: String(chunk), timestamp: String(timestampMs), payload: encodeMulaw(pcm).toString('base64') }, streamSid: sid
      }),
      dtmf: (digit) => ({ event: 'dtmf', streamSid: sid, sequenceNumber: next(), dtmf: { track: 'inbound_track', digit } }),
      stop: () => ({ event: 'stop', sequenceNumber: next(), streamSid: sid, stop: { accountSid: accountId, callSid: callId } }),
      hear: (message) => hearMediaAndMarks(message, decodeMulaw, (name) => ({ event: 'mark', sequenceNumber: next(), streamSid: sid, mark: { name } })),
      playbackRate: TWILIO_SAMPLE_RATE
    }
  }
}
