import type { Track } from '../track.js'

export type { Track }

/** A vendor's message, normalized. Each vendor's decoder turns its wire messages into these. */
export type InboundEvent =
  | { kind: 'connected' }
  | { kind: 'start', start: StreamStart }
  | { kind: 'media', pcm: Buffer, vendorSeq: number | null, timestampMs: number | null, chunk?: number | null, track?: Track }
  | { kind: 'dtmf', digit: string, durationMs: number | null }
  | { kind: 'mark', name: string }
  | { kind: 'stop', reason: string | null }
  /** The vendor paused or resumed its stream (AudioHook's pause): the call's audio is withheld meanwhile. */
  | { kind: 'pause' }
  | { kind: 'resume' }
  /** The vendor reports a problem it has with the stream (Telnyx's `error`); logged at warn, the call goes on. */
  | { kind: 'vendor-error', code: string | null, title: string | null, detail: string | null }
  | { kind: 'unknown', event: string }

export interface StreamStart {
  callId: string
  /** The account the start names (a claim): the connection's credential decides whether it stands. */
  accountId: string | null
  streamId: string | null
  /** The rate of the call's audio, as the adapter settled it (from the URL, the message or the vendor's fixed rate). */
  sampleRate: number
  /** A rate the start message claims that the adapter did not use; a mismatch is logged. */
  declaredSampleRate: number | null
  from: string | null
  to: string | null
  customParameters: Record<string, unknown>
  /**
   * The tracks the vendor will send, when it says (Twilio's and Plivo's `tracks`) or the URL does; absent, the call
   * has one track, the caller's. Media of a call with two tracks names its track.
   */
  tracks?: readonly Track[]
}
