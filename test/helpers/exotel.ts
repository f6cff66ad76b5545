import WebSocket, { type ClientOptions } from 'ws'
import { Collected } from './waiter.js'

/** Literal messages from Exotel's docs, string-typed variant (https://developer.exotel.com/docs/agentstream/websocket-protocol). */
export const exotelStrings = {
  connected: () => ({ event: 'connected' }),
  start: (callSid: string, streamSid = `MZ${callSid}`) => ({
    event: 'start',
    sequence_number: '1',
    stream_sid: streamSid,
    start: {
      stream_sid: streamSid,
      call_sid: callSid,
      account_sid: 'ACxxxxxxxxxxxxxxxxxxxxxxxx',
      from: '+919876543210',
      to: '+918047491899',
      custom_parameters: { key1: 'value1' },
      media_format: { encoding: 'audio/x-raw', sample_rate: '8000', bit_rate: '16' }
    }
  }),
  media: (streamSid: string, seq: number, chunk: number, timestampMs: number, pcm: Buffer) => ({
    event: 'media',
    sequence_number: String(seq),
    stream_sid: streamSid,
    media: { chunk: String(chunk), timestamp: String(timestampMs), payload: pcm.toString('base64') }
  }),
  dtmf: (streamSid: string, seq: number, digit: string) => ({
    event: 'dtmf', sequence_number: String(seq), stream_sid: streamSid, dtmf: { digit, duration: '100' }
  }),
  mark: (streamSid: string, seq: number, name: string) => ({
    event: 'mark', sequence_number: String(seq), stream_sid: streamSid, mark: { name }
  }),
  stop: (callSid: string, streamSid: string, seq: number) => ({
    event: 'stop',
    sequence_number: String(seq),
    stream_sid: streamSid,
    stop: { call_sid: callSid, account_sid: 'ACxxxxxxxxxxxxxxxxxxxxxxxx', reason: 'callended' }
  })
}

/**
 * The numeric variant from the page "migrated from the Exotel Support Center"
 * (https://developer.exotel.com/docs/agentstream/stream-voicebot-applet).
 */
export const exotelNumbers = {
  connected: exotelStrings.connected,
  start: (callSid: string, streamSid = `MZ${callSid}`) => ({
    event: 'start',
    sequence_number: 1,
    stream_sid: streamSid,
    start: {
      stream_sid: streamSid,
      call_sid: callSid,
      account_sid: 'ACnumeric', // the page's placeholder, <account_sid>, is not an account id
      from: '+919876543210',
      to: '+911234567890',
      custom_parameters: { key1: 'value1', key2: 'value2' },
      media_format: { encoding: 'raw', sample_rate: '8000', bit_rate: '128' }
    }
  }),
  media: (streamSid: string, seq: number, chunk: number, timestampMs: number, pcm: Buffer) => ({
    event: 'media', sequence_number: seq, stream_sid: streamSid, media: { chunk, timestamp: String(timestampMs), payload: pcm.toString('base64') }
  }),
  dtmf: exotelStrings.dtmf,
  mark: exotelStrings.mark,
  stop: exotelStrings.stop
}

export interface Closed {
  code: number
  reason: string
}

/** A provider-side client: connects, sends JSON, and records what the server sends and how it closes. */
export class ProviderClient {
  readonly ws: WebSocket
  readonly received = new Collected<string>()
  readonly closed: Promise<Closed>

  private constructor (ws: WebSocket) {
    this.ws = ws
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })))
    ws.on('message', (data) => this.received.push(data.toString()))
  }

  static async connect (url: string, options: ClientOptions = {}): Promise<ProviderClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...options })
    const client = new ProviderClient(ws)
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    return client
  }

  send (message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message))
  }

  close (): void {
    this.ws.close()
  }
}

export interface Refused {
  status: number
  body: string
  headers: Record<string, string | string[] | undefined>
}

/** Attempts an upgrade that the server is expected to refuse with an HTTP status. */
export function refusedUpgrade (url: string, options: ClientOptions = {}): Promise<Refused> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...options })
    ws.once('open', () => {
      ws.terminate()
      reject(new Error('the upgrade was accepted'))
    })
    ws.once('unexpected-response', (_request, response) => {
      let body = ''
      response.on('data', (chunk: Buffer) => { body += chunk.toString() })
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body, headers: response.headers }))
    })
    ws.once('error', reject)
  })
}

/** Deterministic PCM that differs frame to frame, so a swapped or dropped frame shows. */
export function pcmFrame (bytes: number, seed: number): Buffer {
  const pcm = Buffer.alloc(bytes)
  for (let i = 0; i < bytes / 2; i++) pcm.writeInt16LE(((seed * 7919 + i * 31) % 65536) - 32768, i * 2)
  return pcm
}

export function basicAuth (key: string, token: string): string {
  return `Basic ${Buffer.from(`${key}:${token}`).toString('base64')}`
}
