import type { CallStopEvent } from './bus/call-events.js'
import type { DashboardPart, ListenEnd, ListenStart } from './dashboard/dashboard-view.js'
import type { Track } from './track.js'
import type { MetricsSnapshot } from './metrics.js'

/**
 * What the processes of a group (WORKERS > 1) tell each other over node:cluster's IPC channel: the primary
 * (src/process-group.ts) and each worker (src/worker-link.ts). Every message is an object whose `type` starts with
 * `rtaa:`, so nothing else that travels on the channel (Node's own cluster messages) is taken for one.
 */

/** A call as its call.stop names it: the fields every event carries, but `ts`. */
export type CallIdentity = Pick<CallStopEvent, 'interaction_id' | 'tenant_id' | 'tenant_verified' | 'vendor' | 'stream_id'>

/** What a call.stop counts, in this order: frames, bytes, frames_lost, gaps, duplicates, reordered, frames_withheld, bytes_withheld. */
export type CallCounts = [frames: number, bytes: number, framesLost: number, gaps: number, duplicates: number, reordered: number, framesWithheld: number, bytesWithheld: number]

/** From a worker to the primary. `call` is a number of the worker's own, naming one of its calls. */
export type WorkerMessage =
  /** Listening on PORT (and ADMIN_PORT): the worker serves. */
  | { type: 'rtaa:ready' }
  /**
   * call.start is published. `claim` is the token the worker holds the call's claim in Redis with, so the primary can
   * give it up should the worker die; `started_at` (epoch ms) gives call.stop its duration; `epoch` names the call's
   * audio stream in Streams mode (CallRef.epoch); `tracks` are the call's, in the order call-counts gives theirs.
   */
  | { type: 'rtaa:call-start', call: number, identity: CallIdentity, epoch: number | null, started_at: number, claim: string | null, tracks: Track[] }
  /** call.stop is published: the worker ended the call itself. */
  | { type: 'rtaa:call-end', call: number }
  /** Once a second while the worker has live calls, one message for all of them: each track's counts so far. */
  | { type: 'rtaa:call-counts', counts: Array<[call: number, tracks: CallCounts[]]> }
  /** The worker serves GET /metrics and asks for the whole group's; `id` is the worker's own request number. */
  | { type: 'rtaa:scrape', id: number }
  /** The worker's registry, as the primary asked in `rtaa:collect`. */
  | { type: 'rtaa:metrics', id: number, metrics: MetricsSnapshot }
  /**
   * The dashboard (src/dashboard/). The worker serves a view and asks for every worker's part of it; `id`, unique in
   * the group (`<pid>:<n>`), names the look or the listen-in in every message that follows.
   */
  | { type: 'rtaa:look', id: string, tenant: string | null }
  /** This worker's part, as the primary asked in `rtaa:peek`. */
  | { type: 'rtaa:part', id: string, part: DashboardPart }
  /** The worker serves a listen-in and asks for the worker that holds the call to tap it. */
  | { type: 'rtaa:listen', id: string, tenant: string | null, call: string, track: Track }
  /** This worker's answer to `rtaa:tap`: it taps the call, or why not. */
  | { type: 'rtaa:tapped', id: string, started: ListenStarted }
  /** A tapped call's audio, and the end of the tap (the call ended): for the worker that listens. */
  | { type: 'rtaa:audio', id: string, pcm: Uint8Array }
  | { type: 'rtaa:listen-end', id: string, reason: ListenEnd }
  /** The listener left: the tap goes. */
  | { type: 'rtaa:unlisten', id: string }

/** From the primary to a worker. */
export type PrimaryMessage =
  /** The primary got a termination signal: drain as for that signal, then exit. */
  | { type: 'rtaa:drain', signal: string }
  /** Send your registry (`rtaa:metrics` with the same id). */
  | { type: 'rtaa:collect', id: number }
  /** The answer to `rtaa:scrape`: the group's metrics in Prometheus text, or why there are none. */
  | { type: 'rtaa:scraped', id: number, text: string }
  | { type: 'rtaa:scraped', id: number, error: string }
  /** Send your part of a dashboard view for a viewer of `tenant` (`rtaa:part`). */
  | { type: 'rtaa:peek', id: string, tenant: string | null }
  /** The answer to `rtaa:look`: the parts of the workers that answered in time. */
  | { type: 'rtaa:looked', id: string, parts: DashboardPart[] }
  /** Tap this call if you hold it (`rtaa:tapped`), and send its audio as `rtaa:audio`. */
  | { type: 'rtaa:tap', id: string, tenant: string | null, call: string, track: Track }
  /** The answer to `rtaa:listen`; then `rtaa:audio` and `rtaa:listen-end` come through, as the tapping worker sent them. */
  | { type: 'rtaa:listened', id: string, started: ListenStarted }
  | { type: 'rtaa:audio', id: string, pcm: Uint8Array }
  | { type: 'rtaa:listen-end', id: string, reason: ListenEnd }
  /** Stop tapping: the listener left. */
  | { type: 'rtaa:untap', id: string }

/** A listen-in's start as it travels: ListenStart without its stop(), which stays with the tapping worker. */
export type ListenStarted = { listening: true, sampleRate: number, interactionId: string, tenantId: string | null } | Extract<ListenStart, { listening: false }>

function isGroupMessage (message: unknown): message is { type: string } {
  return typeof message === 'object' && message !== null && typeof (message as { type?: unknown }).type === 'string' &&
    (message as { type: string }).type.startsWith('rtaa:')
}

/** The primary's view: a message from a worker. */
export const isWorkerMessage = (message: unknown): message is WorkerMessage => isGroupMessage(message)

/** A worker's view: a message from the primary. */
export const isPrimaryMessage = (message: unknown): message is PrimaryMessage => isGroupMessage(message)
