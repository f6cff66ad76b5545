import type { Track } from '../track.js'

/** The version of the Redis contract that call.start announces (docs/redis-contract.md, "Versions"). */
export const CONTRACT_VERSION = 2

/** Call events published on `{prefix}calls` (docs/redis-contract.md, "Call events"). */
interface CallEventBase {
  interaction_id: string
  tenant_id: string | null
  /** Whether a credential vouches for tenant_id; false when the client merely named the account. */
  tenant_verified: boolean
  vendor: string
  stream_id: string | null
  ts: number
}

export interface CallStartEvent extends CallEventBase {
  type: 'call.start'
  sample_rate: number
  encoding: 'pcm_s16le'
  channels: 1
  from: string | null
  to: string | null
  custom_parameters: Record<string, unknown>
  /** REDIS_TRANSPORT: how this call's frames and events travel. */
  transport: 'pubsub' | 'streams'
  /** True on a Redis Cluster: the channels are sharded (SSUBSCRIBE, SPUBLISH). */
  sharded: boolean
  /** Pub/sub: the channel of the call's audio; null in Streams mode. */
  audio_channel: string | null
  /** Streams: the key of the call's audio stream; null in pub/sub mode. */
  audio_stream: string | null
  playback_channel: string
  /** The call's tracks: one (`inbound`, the caller's, unless the vendor sends the agent's only) or both. */
  tracks: Track[]
  /** Each track's audio channel (pub/sub) or stream (Streams); the caller's is audio_channel or audio_stream. */
  audio_by_track: Partial<Record<Track, string>>

  contract_version: typeof CONTRACT_VERSION
}

export interface CallDtmfEvent extends CallEventBase {
  type: 'call.dtmf'
  digit: string
  duration_ms: number | null
}

export interface CallMarkEvent extends CallEventBase {
  type: 'call.mark'
  name: string
  /** True when clear dropped the mark before the vendor played it. */
  cleared: boolean
}

export interface CallStopEvent extends CallEventBase {
  type: 'call.stop'
  reason: string
  frames: number
  bytes: number
  duration_ms: number
  /** Frames the gateway could not publish (Redis refused them, or its outage buffer overflowed). */
  frames_lost: number
  /** From the vendor's chunk numbers: chunks still missing, received twice, received late. */
  gaps: number
  duplicates: number
  reordered: number
  /** Frames, and their PCM bytes, received while the call was paused: withheld from Redis, not lost. */
  frames_withheld: number
  bytes_withheld: number
  /** The counts above, per track; for one track, the same as the call's. */
  tracks: Partial<Record<Track, TrackTotals>>
}

/** Who paused or resumed a call: a worker's command on its control channel, or the vendor's own pause (AudioHook). */
export type PauseSource = 'worker' | 'vendor'

/** From now on the call's audio is withheld from Redis (docs/redis-contract.md, "Pause and resume"). */
export interface CallPausedEvent extends CallEventBase {
  type: 'call.paused'
  source: PauseSource
}

export interface CallResumedEvent extends CallEventBase {
  type: 'call.resumed'
  source: PauseSource
  /** How long the pause lasted, and what it withheld. */
  paused_ms: number
  frames_withheld: number
  bytes_withheld: number
}

/** One track's share of call.stop's counts. */
export interface TrackTotals {
  frames: number
  bytes: number
  frames_lost: number
  gaps: number
  duplicates: number
  reordered: number
  frames_withheld: number
  bytes_withheld: number
}

/** A call's counts from its tracks' (call.stop's top-level fields). */
export function callTotals (tracks: Partial<Record<Track, TrackTotals>>): TrackTotals {
  const totals: TrackTotals = { frames: 0, bytes: 0, frames_lost: 0, gaps: 0, duplicates: 0, reordered: 0, frames_withheld: 0, bytes_withheld: 0 }
  for (const counts of Object.values(tracks)) {
    totals.frames += counts.frames
    totals.bytes += counts.bytes
    totals.frames_lost += counts.frames_lost
    totals.gaps += counts.gaps
    totals.duplicates += counts.duplicates
    totals.reordered += counts.reordered
    totals.frames_withheld += counts.frames_withheld
    totals.bytes_withheld += counts.bytes_withheld
  }
  return totals
}

export type CallEvent = CallStartEvent | CallDtmfEvent | CallMarkEvent | CallPausedEvent | CallResumedEvent | CallStopEvent
