import type { SimulatedCall, VendorSimulator } from '../vendor-simulator.js'
import { VONAGE_SAMPLE_RATES } from './vonage-adapter.js'

/**
 * Vonage's side of a call, as its WebSocket guide shows it (https://developer.vonage.com/en/voice/voice-api/concepts/websockets):
 * websocket:connected with the NCCO's headers, binary 20 ms L16 frames of the call's mix, no stop (it closes).
 */
export const vonageSimulator: VendorSimulator = {
  sampleRates: VONAGE_SAMPLE_RATES,
  // The rate of Vonage's own NCCO examples.
  defaultSampleRate: 16000,
  chunkMs: 20,

  call (callId: string, sampleRate: number, accountId: string): SimulatedCall {
    return {
      // The headers an answer webhook would set: the call's uuid, the account, and one of the operator's own.
      opening: [{ event: 'websocket:connected', 'content-type': `audio/l16;rate=${sampleRate}`, call_id: callId, account_id: accountId, simulator: 'rtaa-sim' }],
      media: (_chunk, _timestampMs, pcm) => pcm,
      dtmf: (digit) => ({ event: 'websocket:dtmf', digit, duration: 260 }),
      stop: () => null,
      hear: (message) => {
        if (Buffer.isBuffer(message)) return { pcm: message }
        // Vonage answers notify once the audio before it has played; here at once, as the other simulators echo marks.
        if (message.action === 'notify') return { reply: { event: 'websocket:notify', payload: message.payload } }
        if (message.action === 'clear') return { reply: { event: 'websocket:cleared' } }
        return {}
      },
      playbackRate: sampleRate
    }
  }
}
