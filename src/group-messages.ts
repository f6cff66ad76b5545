import type { CallStopEvent } from './bus/call-events.js'
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

/** From the primary to a worker. */
export type PrimaryMessage =
  /** The primary got a termination signal: drain as for that signal, then exit. */
  | { type: 'rtaa:drain', signal: string }
  /** Send your registry (`rtaa:metrics` with the same id). */
  | { type: 'rtaa:collect', id: number }
  /** The answer to `rtaa:scrape`: the group's metrics in Prometheus text, or why there are none. */
  | { type: 'rtaa:scraped', id: number, text: string }
  | { type: 'rtaa:scraped', id: number, error: string }

function isGroupMessage (message: unknown): message is { type: string } {
  return typeof message === 'object' && message !== null && typeof (message as { type?: unknown }).type === 'string' &&
    (message as { type: string }).type.startsWith('rtaa:')
}

/** The primary's view: a message from a worker. */
export const isWorkerMessage = (message: unknown): message is WorkerMessage => isGroupMessage(message)

/** A worker's view: a message from the primary. */
export const isPrimaryMessage = (message: unknown): message is PrimaryMessage => isGroupMessage(message)
