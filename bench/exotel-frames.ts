/**
 * The Exotel messages the benchmark clients send, shaped as Exotel sends them
 * (https://developer.exotel.com/docs/agentstream/websocket-protocol). Media is built as a string, not through
 * JSON.stringify, so the generator stays cheap enough not to fall behind.
 */

/** connected, then start: what opens a call. */
export function openingMessages (callSid: string, streamSid: string, sampleRate: number): string[] {
  return [
    JSON.stringify({ event: 'connected' }),
    JSON.stringify({ event: 'start', sequence_number: '1', stream_sid: streamSid, start: { stream_sid: streamSid, call_sid: callSid, account_sid: 'ACbench', media_format: { encoding: 'audio/x-raw', sample_rate: String(sampleRate), bit_rate: '16' } } })
  ]
}

/** Media frame k (from 0) of a call: sequence_number k + 2 (start was 1), chunk k + 1. */
export function mediaMessage (streamSid: string, k: number, frameMs: number, payloadBase64: string): string {
  return `{"event":"media","sequence_number":"${k + 2}","stream_sid":"${streamSid}","media":{"chunk":"${k + 1}","timestamp":"${k * frameMs}","payload":"${payloadBase64}"}}`
}
