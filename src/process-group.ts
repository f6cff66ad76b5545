import cluster, { type Worker } from 'node:cluster'
import { availableParallelism } from 'node:os'
import type { Bus } from './bus/bus.js'
import { callTotals, type CallStopEvent, type TrackTotals } from './bus/call-events.js'
import type { CallRef } from './bus/channels.js'
import { createBus, type BusConfig } from './bus/create-bus.js'
import type { CoreConfig } from './core-config.js'
import { GroupDashboard } from './group-dashboard.js'
import { isWorkerMessage, type CallCounts, type CallIdentity, type PrimaryMessage, type WorkerMessage } from './group-messages.js'
import type { Log } from './logger.js'
import type { Track } from './track.js'
import { aggregateGroup, createGroupMetrics, createMetrics, keepCounted, type Metrics, type MetricsSnapshot } from './metrics.js'

/** The environment variable that marks a worker of this primary (not of some other node:cluster primary, e.g. pm2's). */
export const WORKER_MARK = 'RTAA_INGEST_WORKER'

/** WORKERS as a number of processes: `auto` is one per core the machine has (os.availableParallelism()). */
export function workerCount (setting: string): number {
  return setting === 'auto' ? availableParallelism() : Number(setting)
}

/** Why the group could not start: a worker exited before it listened (a port taken, say). */
export class StartFailed extends Error {
  override name = 'StartFailed'
  /** The exit status the primary should end with: the worker's own (78 for a bad setting), else 1. */
  readonly exitCode: number

  constructor (worker: number, pid: number | undefined, code: number | null, signal: string | null) {
    super(`worker ${worker} (pid ${pid ?? '?'}) exited before it listened: ${signal ?? `status ${code}`}`)
    this.exitCode = code !== null && code !== 0 ? code : 1
  }
}

export interface ProcessGroupOptions {
  config: BusConfig & Pick<CoreConfig, 'METRICS_TENANT_LABEL' | 'DRAIN_TIMEOUT_MS'>
  /** Workers to keep running. */
  size: number
  log: Log
}

/** A call a worker holds, as the primary knows it. */
interface HeldCall {
  identity: CallIdentity
  /** Its CallRef.epoch, which names its audio stream in Streams mode. */
  epoch: number | null
  startedAt: number
  claim: string | null
  tracks: Track[]
  /** Each track's, as of the worker's last report, up to a second old. */
  counts: CallCounts[]
}

/** One worker process, while it runs. */
interface Member {
  worker: Worker
  pid: number | undefined
  /** It listens: it serves calls, and answers for its metrics. */
  ready: boolean
  calls: Map<number, HeldCall>
  /** Its registry at the last collection; kept past its exit (counters and histograms) so the group's sums never fall. */
  metrics: MetricsSnapshot | null
  /** Collections waiting for its registry, by id. */
  collecting: Map<number, () => void>
  /** Sends it a message; false when its channel is closed. */
  send: (message: PrimaryMessage) => boolean
}

/** Exits within this window count towards the restart back-off. */
const CRASH_WINDOW_MS = 60_000
/** The second exit in the window waits this long before its replacement, each further one twice as long, up to the cap. */
const RESTART_BACKOFF_MS = 500
const RESTART_BACKOFF_MAX_MS = 30_000
/** How long a collection waits for a worker's registry before it takes the one that worker sent last. */
const COLLECT_TIMEOUT_MS = 5_000

/**
 * The primary of WORKERS > 1: it forks the workers (node:cluster; they share PORT and ADMIN_PORT, round-robin on
 * Linux), replaces one that exits unexpectedly (with a back-off, so a crash loop does not spin) and publishes
 * call.stop (reason `worker_exited`) for each call it held, sums every worker's metrics for /metrics, and on a
 * termination signal has every worker drain. It serves no call itself and publishes nothing else.
 */
export class ProcessGroup {
  readonly #options: ProcessGroupOptions
  readonly #log: Log
  readonly #members = new Map<number, Member>()
  readonly #dashboard = new GroupDashboard(() => this.#members.values())
  readonly #bus: Bus
  readonly #metrics: Metrics
  readonly #groupMetrics: ReturnType<typeof createGroupMetrics>
  /** What exited workers had counted: their counters and histograms, summed. */
  #retired: MetricsSnapshot = []
  #collections = 0
  /** Unexpected exits within CRASH_WINDOW_MS, for the back-off. */
  #exits: number[] = []
  readonly #restarts = new Set<NodeJS.Timeout>()
  /** Every worker of the first round has listened. */
  #started = false
  #starting: { resolve: () => void, reject: (err: Error) => void } | null = null
  #draining = false
  /** A worker ended the drain other than with status 0. */
  #unclean = false
  #emptied: Array<() => void> = []

  constructor (options: ProcessGroupOptions) {
    this.#options = options
    this.#log = options.log
    this.#metrics = createMetrics({ tenantLabel: options.config.METRICS_TENANT_LABEL })
    this.#groupMetrics = createGroupMetrics(this.#metrics.registry)
    this.#bus = createBus(options.config, options.log, this.#metrics)
  }

  /** Forks every worker; resolves once all of them listen, rejects with StartFailed if one exits first. */
  start (): Promise<void> {
    cluster.setupPrimary({ serialization: 'advanced' })
    return new Promise((resolve, reject) => {
      this.#starting = { resolve, reject }
      for (let i = 0; i < this.#options.size; i++) this.#fork()
    })
  }

  /**
   * Has every worker drain as for `signal` (each by its own DRAIN_TIMEOUT_MS) and waits until all have exited; none
   * is replaced meanwhile. True when every one drained cleanly (status 0).
   */
  async drain (signal: string): Promise<boolean> {
    this.#draining = true
    for (const timer of this.#restarts) clearTimeout(timer)
    this.#restarts.clear()
    for (const member of this.#members.values()) {
      // A worker that does not listen yet holds no call, and may not be able to hear the message yet.
      if (member.ready && member.worker.isConnected()) this.#send(member, { type: 'rtaa:drain', signal })
      else member.worker.process.kill('SIGTERM')
    }
    if (this.#members.size > 0) await new Promise<void>((resolve) => this.#emptied.push(resolve))
    return !this.#unclean
  }

  /** Closes the primary's Redis connections, once what it published (call.stop for lost workers) has gone out. */
  async close (): Promise<void> {
    this.#bus.flushUntil(Date.now() + this.#options.config.DRAIN_TIMEOUT_MS)
    await this.#bus.close()
  }

  /** Workers running (forked, not yet exited). */
  get size (): number {
    return this.#members.size
  }

  #fork (): void {
    const worker = cluster.fork({ [WORKER_MARK]: String(process.pid) })
    const member: Member = { worker, pid: worker.process.pid, ready: false, calls: new Map(), metrics: null, collecting: new Map(), send: (message) => this.#send(member, message) }
    this.#members.set(worker.id, member)
    worker.on('message', (message: unknown) => {
      if (isWorkerMessage(message)) this.#received(member, message)
    })
    worker.on('exit', (code: number | null, signal: string | null) => this.#exited(member, code, signal))
    // An IPC write to a worker that has just died; its exit is what matters.
    worker.on('error', (err: Error) => this.#log.debug({ err, worker: worker.id }, 'worker channel error'))
    this.#log.debug({ worker: worker.id, worker_pid: member.pid }, 'worker forked')
  }

  #received (member: Member, message: WorkerMessage): void {
    if (GroupDashboard.handles(message)) {
      this.#dashboard.received(member, message)
      return
    }
    switch (message.type) {
      case 'rtaa:ready':
        this.#ready(member)
        break
      case 'rtaa:call-start':
        member.calls.set(message.call, { identity: message.identity, epoch: message.epoch, startedAt: message.started_at, claim: message.claim, tracks: message.tracks, counts: [] })
        break
      case 'rtaa:call-end':
        member.calls.delete(message.call)
        break
      case 'rtaa:call-counts':
        for (const [call, counts] of message.counts) {
          const held = member.calls.get(call)
          if (held !== undefined) held.counts = counts
        }
        // Debug only: one line a second per worker with calls, which says what a call.stop of its calls would count.
        this.#log.debug({ worker: member.worker.id, worker_pid: member.pid, calls: message.counts.length, frames: message.counts.reduce((sum, [, tracks]) => tracks.reduce((framesOfCall, [frames]) => framesOfCall + frames, sum), 0) },
          'call counts reported')
        break
      case 'rtaa:scrape':
        this.#scrape().then(
          (text) => this.#send(member, { type: 'rtaa:scraped', id: message.id, text }),
          (err: Error) => {
            this.#log.error({ err }, 'summing the process group\'s metrics failed')
            this.#send(member, { type: 'rtaa:scraped', id: message.id, error: err.message })
          })
        break
      case 'rtaa:metrics':
        member.metrics = message.metrics
        member.collecting.get(message.id)?.()
        break
    }
  }

  #ready (member: Member): void {
    member.ready = true
    this.#countReady()
    this.#log.info({ worker: member.worker.id, worker_pid: member.pid }, 'worker listening')
    if (this.#started || this.#starting === null) return
    if ([...this.#members.values()].every((m) => m.ready)) {
      this.#started = true
      this.#starting.resolve()
      this.#starting = null
    }
  }

  #countReady (): void {
    this.#groupMetrics.workers.set([...this.#members.values()].filter((m) => m.ready).length)
  }

  #exited (member: Member, code: number | null, signal: string | null): void {
    const { worker, pid, calls } = member
    this.#members.delete(worker.id)
    this.#dashboard.exited(member)
    this.#countReady()
    for (const done of member.collecting.values()) done()
    if (member.metrics !== null) this.#retired = keepCounted(this.#retired, member.metrics)
    const clean = code === 0 && signal === null
    const fields = { worker: worker.id, worker_pid: pid, code, signal, calls: calls.size }

    if (this.#draining) {
      // A worker that drained published call.stop for all of its calls; one that did not may have left some.
      if (clean || !member.ready) {
        this.#log.info(fields, 'worker exited')
      } else {
        this.#unclean = true
        this.#log.error(fields, 'worker exited without draining cleanly')
        this.#endCalls(member)
      }
      if (this.#members.size === 0) for (const resolve of this.#emptied.splice(0)) resolve()
      return
    }

    if (!this.#started && this.#starting !== null) {
      // As a single process that cannot listen does, the group stops: there is nothing to restart into.
      this.#endCalls(member)
      this.#starting.reject(new StartFailed(worker.id, pid, code, signal))
      this.#starting = null
      return
    }
    this.#log.error(fields, 'worker exited unexpectedly')
    this.#endCalls(member)
    this.#restart()
  }

  /** Forks a replacement, at once for the first exit in a minute, later for each further one. */
  #restart (): void {
    const now = Date.now()
    this.#exits = this.#exits.filter((at) => now - at < CRASH_WINDOW_MS)
    this.#exits.push(now)
    const recent = this.#exits.length
    const delayMs = recent === 1 ? 0 : Math.min(RESTART_BACKOFF_MAX_MS, RESTART_BACKOFF_MS * 2 ** (recent - 2))
    this.#log.info({ delay_ms: delayMs, exits_in_last_minute: recent }, 'restarting a worker')
    const timer = setTimeout(() => {
      this.#restarts.delete(timer)
      this.#groupMetrics.workerRestarts.inc()
      this.#fork()
    }, delayMs)
    this.#restarts.add(timer)
  }

  /**
   * Publishes call.stop, reason `worker_exited`, for each call a worker held when it died: with its counts as the
   * worker last reported them and its duration from call.start. Then gives up the call's claim, so the stream may
   * reconnect to another worker at once.
   */
  #endCalls (member: Member): void {
    for (const { identity, epoch, startedAt, claim, tracks, counts } of member.calls.values()) {
      const byTrack: Partial<Record<Track, TrackTotals>> = {}
      tracks.forEach((track, i) => {
        const [frames, bytes, framesLost, gaps, duplicates, reordered, framesWithheld, bytesWithheld] = counts[i] ?? [0, 0, 0, 0, 0, 0, 0, 0]
        byTrack[track] = { frames, bytes, frames_lost: framesLost, gaps, duplicates, reordered, frames_withheld: framesWithheld, bytes_withheld: bytesWithheld }
      })
      const totals = callTotals(byTrack)
      const now = Date.now()
      const stop: CallStopEvent = {
        type: 'call.stop',
        ...identity,
        ts: now,
        reason: 'worker_exited',
        duration_ms: now - startedAt,
        ...totals,
        tracks: byTrack
      }
      const call: CallRef = { tenantId: identity.tenant_id, tenantVerified: identity.tenant_verified, interactionId: identity.interaction_id, epoch: epoch ?? undefined, tracks }
      const log = this.#log.child({ interaction_id: identity.interaction_id, tenant_id: identity.tenant_id, vendor: identity.vendor })
      // The claim goes once call.stop is out, so a new stream of the call cannot announce its call.start before it.
      const release = (): void => { if (claim !== null) this.#bus.releaseCall(call, claim) }
      this.#bus.publishEvent(call, stop).then(release, (err: unknown) => {
        log.warn({ err }, 'call.stop of a call whose worker exited not published to redis')
        release()
      })
      const labels = this.#metrics.callLabels(identity.vendor, identity.tenant_id, identity.tenant_verified)
      this.#metrics.callsEnded.inc({ ...labels, reason: 'worker_exited' })
      log.info({ stream_id: identity.stream_id, worker: member.worker.id, worker_pid: member.pid, ...totals, ...(tracks.length > 1 ? { tracks: byTrack } : {}), duration_ms: stop.duration_ms, reason: 'worker_exited' }, 'call ended')
    }
    member.calls.clear()
  }

  /**
   * The group's metrics in Prometheus text: every serving worker's registry, what exited workers counted, and the
   * primary's own (its call.stop counts, workers, restarts, its process). A worker that does not answer within
   * COLLECT_TIMEOUT_MS counts with what it sent last, so a slow worker never makes a counter fall.
   */
  async #scrape (): Promise<string> {
    const id = ++this.#collections
    const serving = [...this.#members.values()].filter((member) => member.ready && member.worker.isConnected())
    await Promise.all(serving.map((member) => this.#collect(member, id)))
    this.#metrics.redisConnected.set(this.#bus.connected ? 1 : 0)
    const own = await this.#metrics.registry.getMetricsAsJSON()
    // Read after the wait: a worker that exited meanwhile is in #retired now, not among the members.
    const workers = [...this.#members.values()].flatMap((member) => member.ready && member.metrics !== null ? [member.metrics] : [])
    return aggregateGroup([...workers, this.#retired, own]).metrics()
  }

  #collect (member: Member, id: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#log.warn({ worker: member.worker.id, worker_pid: member.pid }, 'a worker did not send its metrics in time; using what it sent last')
        done()
      }, COLLECT_TIMEOUT_MS)
      const done = (): void => {
        clearTimeout(timer)
        member.collecting.delete(id)
        resolve()
      }
      member.collecting.set(id, done)
      if (!this.#send(member, { type: 'rtaa:collect', id })) done()
    })
  }

  #send (member: Member, message: PrimaryMessage): boolean {
    if (!member.worker.isConnected()) return false
    member.worker.send(message, undefined, (err: Error | null) => {
      if (err !== null) this.#log.debug({ err, worker: member.worker.id, message: message.type }, 'message to a worker not sent')
    })
    return true
  }
}
