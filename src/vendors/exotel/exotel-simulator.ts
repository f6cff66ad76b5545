import { hearMediaAndMarks, type SimulatedCall, type VendorSimulator } from '../vendor-simulator.js'
import { EXOTEL_SAMPLE_RATES, requestedRate } from './exotel-adapter.js'

/** Exotel's messages as its docs show them, counters as strings (https://developer.exotel.com/docs/agentstream/websocket-protocol). */
export const exotelSimulator: VendorSimulator = {
  sampleRates: EXOTEL_SAMPLE_RATES,
  defaultSampleRate: 8000,
  chunkMs: 100,
  // Exotel streams at the rate the applet's URL names, read here as the gateway reads it.
  urlSampleRate (url) {
    const query = Object.fromEntries([...new Set(url.searchParams.keys())].map((key) => {
      const values = url.searchParams.getAll(key)
      return [key, values.length === 1 ? values[0] : values]
    }))
    if (query['sample-rate'] === undefined && query.sample_rate === undefined) return null
    const rate = requestedRate(query, 0)
    return rate === null ? { error: `sample-rate must be one of ${EXOTEL_SAMPLE_RATES.join(', ')}, given once` } : { rate }
  },
  url: (url, sampleRate) => (/[?&]sample[-_]rate=/.test(url) ? url : `${url}${url.includes('?') ? '&' : '?'}sample-rate=${sampleRate}`),

  call (callId: string, sampleRate: number, accountId: string): SimulatedCall {
    const sid = `MZ${callId}`
    const opening = [
      { event: 'connected' },
      {
        event: 'start',
        sequence_number: '1',
        stream_sid: sid,
        start: {
          stream_sid: sid,
          call_sid: callId,
          account_sid: accountId,
          from: '+910000000001',
          to: '+910000000002',
          custom_parameters: { simulator: 'rtaa-sim' },
          media_format: { encoding: 'audio/x-raw', sample_rate: String(sampleRate), bit_rate: '16' }
        }
      }
    ]
    let seq = opening.length
    const next = (): string => String(++seq)
    return {
      opening,
      media: (chunk, timestampMs, pcm) => ({
        event: 'media', sequence_number: next(), stream_sid: sid, media: { chunk: String(chunk), timestamp: String(timestampMs), payload: pcm.toString('base64') }
      }),
      dtmf: (digit) => ({ event: 'dtmf', sequence_number: next(), stream_sid: sid, dtmf: { digit, duration: '100' } }),
      stop: () => ({ event: 'stop', sequence_number: next(), stream_sid: sid, stop: { call_sid: callId, account_sid: accountId, reason: 'callended' } }),
      hear: (message) => hearMediaAndMarks(message, (pcm) => pcm, (name) => ({ event: 'mark', sequence_number: next(), stream_sid: sid, mark: { name } })),
      playbackRate: sampleRate
    }
  }
}
