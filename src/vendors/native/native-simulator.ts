import type { SimulatedCall, VendorSimulator } from '../vendor-simulator.js'
import { NATIVE_DEFAULT_SAMPLE_RATE, NATIVE_SAMPLE_RATES } from './native-messages.js'

/** A bot or media server speaking the native protocol (docs/native-protocol.md): PCM in binary frames. */
export const nativeSimulator: VendorSimulator = {
  sampleRates: NATIVE_SAMPLE_RATES,
  defaultSampleRate: NATIVE_DEFAULT_SAMPLE_RATE,
  chunkMs: 20,
  call: (callId: string, sampleRate: number): SimulatedCall => ({
    opening: [{ event: 'start', interaction_id: callId, sample_rate: sampleRate, encoding: 'pcm_s16le', channels: 1, metadata: { simulator: 'rtaa-sim' } }],
    media: (_chunk, _timestampMs, pcm) => pcm,
    stop: () => ({ event: 'stop', reason: 'callended' })
  })
}
