import type { AudioTap, LiveCall } from '../calls/live-call.js'
import type { LiveCalls } from '../calls/live-calls.js'
import { callTag } from '../bus/channels.js'
import type { Log } from '../logger.js'
import type { Track } from '../track.js'
import type { CallView, DashboardPart, DashboardView, EndedCallView, ListenSink, ListenStart, ProcessView, Viewer } from './dashboard-view.js'
import { LevelMeter } from './level-meter.js'

export interface DashboardHubOptions {
  liveCalls: LiveCalls
  /** This process's panel as it stands now. */
  process: () => ProcessView
  /** Whether listen-in is enabled (DASHBOARD_LISTEN). */
  listen: boolean
  log: Log
}

/** How the hub reaches the rest of the process group (WORKERS > 1): src/worker-link.ts. */
export interface DashboardGroup {
  /** Every worker's part, this one's included, as a viewer of `tenant` may see it. */
  parts (tenant: string | null): Promise<DashboardPart[]>
  /** Listens to a call in whichever worker holds it. */
  listen (tenant: string | null, id: string, track: Track, sink: ListenSink): Promise<ListenStart>
}

/** A viewer's look keeps levels computed this long for the calls it may see; a feed looks twice a second. */
const WATCH_LEASE_MS = 3000
/** Levels a view carries per track: one second of them, more than a feed polling every half second misses. */
const LEVELS_PER_VIEW = 10
/** Ended calls kept per process for the "recently ended" table. */
const ENDED_KEPT = 50

/** A watched call: its levels per track, and who listens to each. */
class CallWatch implements AudioTap {
  readonly meters = new Map<Track, LevelMeter>()
  readonly listeners = new Map<Track, Set<ListenSink>>()
  readonly #sampleRate: number
  readonly #log: Log

  constructor (sampleRate: number, log: Log) {
    this.#sampleRate = sampleRate
    this.#log = log
  }

  audio (track: Track, pcm: Buffer, bytes: number): void {
    let meter = this.meters.get(track)
    if (meter === undefined) {
      meter = new LevelMeter(this.#sampleRate)
      this.meters.set(track, meter)
    }
    meter.add(pcm, bytes)
    const sinks = this.listeners.get(track)
    if (sinks === undefined || sinks.size === 0) return
    // The call reuses its buffer once this returns; a listener gets its own copy.
    const copy = Buffer.copyBytesFrom(pcm, 0, bytes)
    for (const sink of sinks) {
      try {
        sink.audio(copy)
      } catch (err) {
        // A viewer's failure must never reach the call's frame path.
        this.#log.error({ err }, 'a listen-in failed')
      }
    }
  }

  get listened (): boolean {
    for (const sinks of this.listeners.values()) if (sinks.size > 0) return true
    return false
  }
}

/**
 * The dashboard's view of this process's calls (docs/dashboard.md). It costs a live call nothing while nobody
 * looks: a look leases levels for the calls the viewer may see for a few seconds, and only then does each such call
 * hand its published frames to a CallWatch (RMS per 100 ms); a listen-in keeps its call watched until it stops.
 * With WORKERS > 1, views and listen-ins go through the process group (answerForGroup).
 */
export class DashboardHub {
  readonly #options: DashboardHubOptions
  readonly #watches = new Map<LiveCall, CallWatch>()
  /** Each viewer scope that looked lately (a tenant, or '' for all) and when its lease ends. */
  readonly #leases = new Map<string, number>()
  #leaseTimer: NodeJS.Timeout | null = null
  readonly #ended: EndedCallView[] = []
  #group: DashboardGroup | null = null
  readonly #onStart = (call: LiveCall): void => { this.#rewatch(call, Date.now()) }
  readonly #onEnd = (call: LiveCall): void => this.#callEnded(call)

  constructor (options: DashboardHubOptions) {
    this.#options = options
    options.liveCalls.on('start', this.#onStart)
    options.liveCalls.on('end', this.#onEnd)
  }

  get listenEnabled (): boolean {
    return this.#options.listen
  }

  /** With WORKERS > 1: views and listen-ins span the process group. */
  answerForGroup (group: DashboardGroup): void {
    this.#group = group
  }

  /** What `viewer` may see, of the whole process group when there is one. */
  async view (viewer: Viewer): Promise<DashboardView> {
    const parts = this.#group === null ? [this.part(viewer.tenant)] : await this.#group.parts(viewer.tenant)
    const ended = parts.flatMap((part) => part.ended).sort((a, b) => (b.ended_at ?? 0) - (a.ended_at ?? 0)).slice(0, ENDED_KEPT)
    return {
      at: Date.now(),
      viewer,
      listen: this.#options.listen,
      processes: parts.map((part) => part.process),
      calls: parts.flatMap((part) => part.calls).sort((a, b) => (a.started_at ?? 0) - (b.started_at ?? 0)),
      ended
    }
  }

  /** This process's part of a view for a viewer of `tenant`, whose calls it watches from now on, for a while. */
  part (tenant: string | null): DashboardPart {
    const now = Date.now()
    this.#leases.set(tenant ?? '', now + WATCH_LEASE_MS)
    if (this.#leaseTimer === null) {
      this.#leaseTimer = setInterval(() => this.#expireLeases(), WATCH_LEASE_MS / 3)
      this.#leaseTimer.unref()
    }
    const calls: CallView[] = []
    const pid = process.pid
    for (const call of this.#options.liveCalls.calls()) {
      const info = call.info
      if (info === null || !visible(info, tenant)) continue
      const view = callView(call, pid)
      // An ended call waits here only for its socket to close; it shows among the ended ones.
      if (view === null || view.state === 'ended') continue
      const watch = this.#rewatch(call, now)
      for (const [track, meter] of watch?.meters ?? []) view.levels[track] = meter.recent(LEVELS_PER_VIEW)
      calls.push(view)
    }
    return {
      process: tenant === null ? this.#options.process() : tenantsOwn(this.#options.process(), calls.length),
      calls,
      ended: this.#ended.filter((call) => visible({ tenantId: call.tenant_id, tenantVerified: call.tenant_verified }, tenant))
    }
  }

  /** Listens to one track of a call `viewer` may see, in whichever process of the group holds it. */
  async listen (viewer: Viewer, id: string, track: Track, sink: ListenSink): Promise<ListenStart> {
    if (this.#group !== null) return this.#group.listen(viewer.tenant, id, track, sink)
    return this.tap(viewer.tenant, id, track, sink)
  }

  /** Listens to one track of a call of this process that a viewer of `tenant` may see. */
  tap (tenant: string | null, id: string, track: Track, sink: ListenSink): ListenStart {
    for (const call of this.#options.liveCalls.calls()) {
      const info = call.info
      if (info === null || callTag(info) !== id || !visible(info, tenant) || call.snapshot().state !== 'live') continue
      if (!info.tracks.includes(track)) return { listening: false, reason: 'no_track' }
      const watch = this.#watch(call)
      let sinks = watch.listeners.get(track)
      if (sinks === undefined) {
        sinks = new Set()
        watch.listeners.set(track, sinks)
      }
      sinks.add(sink)
      const stop = (): void => {
        sinks.delete(sink)
        // A call that has ended since is let go for good, not watched again.
        if (this.#watches.get(call) === watch) this.#rewatch(call, Date.now())
      }
      return { listening: true, sampleRate: info.sampleRate, interactionId: info.interactionId, tenantId: info.tenantId, stop }
    }
    return { listening: false, reason: 'not_found' }
  }

  /** Stops watching: every listen-in ends with `shutdown`. */
  close (): void {
    const { liveCalls } = this.#options
    liveCalls.off('start', this.#onStart)
    liveCalls.off('end', this.#onEnd)
    if (this.#leaseTimer !== null) clearInterval(this.#leaseTimer)
    this.#leaseTimer = null
    this.#leases.clear()
    for (const [call, watch] of this.#watches) {
      call.watch(null)
      endListeners(watch, 'shutdown', this.#options.log)
    }
    this.#watches.clear()
  }

  #watch (call: LiveCall): CallWatch {
    let watch = this.#watches.get(call)
    if (watch === undefined) {
      watch = new CallWatch(call.info?.sampleRate ?? 8000, this.#options.log)
      this.#watches.set(call, watch)
      call.watch(watch)
    }
    return watch
  }

  /** Watches the call while a lease covers it or someone listens to it, and lets it go otherwise. */
  #rewatch (call: LiveCall, now: number): CallWatch | null {
    const info = call.info
    const leased = info !== null && [...this.#leases].some(([scope, until]) => until > now && visible(info, scope === '' ? null : scope))
    const watch = this.#watches.get(call)
    if (leased || watch?.listened === true) return this.#watch(call)
    if (watch !== undefined) {
      call.watch(null)
      this.#watches.delete(call)
    }
    return null
  }

  #expireLeases (): void {
    const now = Date.now()
    for (const [scope, until] of this.#leases) if (until <= now) this.#leases.delete(scope)
    for (const call of [...this.#watches.keys()]) this.#rewatch(call, now)
    if (this.#leases.size === 0 && this.#leaseTimer !== null) {
      clearInterval(this.#leaseTimer)
      this.#leaseTimer = null
    }
  }

  #callEnded (call: LiveCall): void {
    const watch = this.#watches.get(call)
    if (watch !== undefined) {
      this.#watches.delete(call)
      call.watch(null)
      endListeners(watch, 'call_ended', this.#options.log)
    }
    const view = callView(call, process.pid)
    if (view === null) return
    const { levels: _levels, ...ended } = view
    this.#ended.unshift(ended)
    if (this.#ended.length > ENDED_KEPT) this.#ended.pop()
  }
}

/** A viewer of `tenant` sees that tenant's calls, verified by a credential; a viewer of all tenants sees every call. */
function visible (info: { tenantId: string | null, tenantVerified: boolean }, tenant: string | null): boolean {
  return tenant === null || (info.tenantVerified && info.tenantId === tenant)
}

function callView (call: LiveCall, pid: number): CallView | null {
  const info = call.info
  if (info === null) return null
  const { vendor: _vendor, interaction_id: _id, sample_rate: _rate, ...snapshot } = call.snapshot()
  return {
    ...snapshot,
    id: callTag(info),
    pid,
    vendor: info.vendor,
    interaction_id: info.interactionId,
    tenant_verified: info.tenantVerified,
    sample_rate: info.sampleRate,
    track_names: [...info.tracks],
    levels: {}
  }
}

/** Ends every listen-in of a call; one that fails must not stop the others, nor the call's end. */
function endListeners (watch: CallWatch, reason: 'call_ended' | 'shutdown', log: Log): void {
  for (const sinks of watch.listeners.values()) {
    for (const sink of sinks) {
      try {
        sink.end(reason)
      } catch (err) {
        log.error({ err }, 'ending a listen-in failed')
      }
    }
    sinks.clear()
  }
}

/**
 * A tenant's viewer sees the process's health (Redis, the event loop, the drain) but not what would tell of other
 * tenants' traffic: its connections are its own calls here, and the buffer and memory are left out.
 */
function tenantsOwn (process: ProcessView, ownCalls: number): ProcessView {
  return { ...process, connections: ownCalls, redis: { ...process.redis, buffer_bytes: null }, rss_bytes: null }
}
