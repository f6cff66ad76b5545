import type { TrackTotals } from '../bus/call-events.js'
import type { CallSnapshot } from '../calls/live-call.js'
import type { Track } from '../track.js'
import type { RecentLevels } from './level-meter.js'

/**
 * What the dashboard's feed sends (GET /dashboard/feed, docs/dashboard.md): the processes, their live calls and the
 * calls that ended lately, as one viewer may see them. Field names are the Redis contract's, snake_case.
 */
export interface DashboardView {
  /** Epoch ms when the view was taken. */
  at: number
  viewer: Viewer
  /** Whether listen-in is enabled (DASHBOARD_LISTEN). */
  listen: boolean
  /** One per process that serves calls: the gateway, or each worker with WORKERS > 1. */
  processes: ProcessView[]
  calls: CallView[]
  ended: EndedCallView[]
}

/** Who is looking, and what they may see: `tenant` null sees every tenant's calls. */
export interface Viewer {
  /** For the log: `ip:<address>`, `basic:<key>` or `jwt:<sub>@<tenant>`; never a secret. */
  who: string
  tenant: string | null
}

export interface ProcessView {
  pid: number
  /** node:cluster's worker id; null for a gateway of one process. */
  worker: number | null
  /** Connections held, started or not, against MAX_CONCURRENT_CALLS; for a tenant's viewer, its own calls. */
  connections: number
  max_calls: number
  /** False once the drain has begun: new calls are refused. */
  accepting: boolean
  /** `buffer_bytes` and `rss_bytes` are null for a tenant's viewer: they tell of every tenant's traffic. */
  redis: { connected: boolean, buffer_bytes: number | null, buffer_max_bytes: number }
  event_loop_delay_ms: number
  rss_bytes: number | null
}

/** A started call (claiming or live) with its counts, and its levels while it is watched. */
export interface CallView extends Omit<CallSnapshot, 'vendor' | 'interaction_id' | 'sample_rate' | 'started_at' | 'tracks'> {
  /** The call's tag in Redis names, `{tenant:interaction_id}`: unique across replicas, and what listen-in names. */
  id: string
  pid: number
  vendor: string
  interaction_id: string
  tenant_verified: boolean
  sample_rate: number
  started_at: number | null
  track_names: Track[]
  tracks: Partial<Record<Track, TrackTotals>>
  /** Per track, the last levels in dBFS, one per 100 ms of published audio; none while paused. */
  levels: Partial<Record<Track, RecentLevels>>
}

/** A call that has ended, as its call.stop told it. */
export type EndedCallView = Omit<CallView, 'levels'>

/** One process's part of a view (a worker's, with WORKERS > 1). */
export interface DashboardPart {
  process: ProcessView
  calls: CallView[]
  ended: EndedCallView[]
}

/** A listen-in's audio: PCM s16le at `sampleRate`, until end() tells why it stopped. */
export interface ListenSink {
  audio (pcm: Buffer): void
  end (reason: ListenEnd): void
}

/** Why a listen-in stops: the call ended, the viewer left, or the process is shutting down. */
export type ListenEnd = 'call_ended' | 'viewer_left' | 'shutdown'

export type ListenStart =
  | { listening: true, sampleRate: number, interactionId: string, tenantId: string | null, stop: () => void }
  /** No call of this id that the viewer may see (the same answer whether it exists or not), or no such track. */
  | { listening: false, reason: 'not_found' | 'no_track' }
