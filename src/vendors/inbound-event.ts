/** A vendor's message, normalized. Each vendor's decoder turns its wire messages into these. */
export type InboundEvent =
  | { kind: 'connected' }
  | { kind: 'start', start: StreamStart }
  | { kind: 'media', pcm: Buffer, vendorSeq: number | null, timestampMs: number | null }
  | { kind: 'dtmf', digit: string, durationMs: number | null }
  | { kind: 'mark', name: string }
  | { kind: 'stop', reason: string | null }
  | { kind: 'unknown', event: string }

export interface StreamStart {
  callId: string
  tenantId: string | null
  streamId: string | null
  /** The rate the start message claims, if it names one; the URL's rate wins when they differ. */
  declaredSampleRate: number | null
  from: string | null
  to: string | null
  customParameters: Record<string, unknown>
}
