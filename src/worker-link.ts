import type { LiveCall } from './calls/live-call.js'
import type { LiveCalls } from './calls/live-calls.js'
import { callTotals } from './bus/call-events.js'
import type { DashboardHub } from './dashboard/dashboard-hub.js'
import type { DashboardPart, ListenSink, ListenStart } from './dashboard/dashboard-view.js'
import { isPrimaryMessage, type CallCounts, type ListenStarted, type PrimaryMessage, type WorkerMessage } from './group-messages.js'
import type { Track } from './track.js'
import type { Log } from './logger.js'
import type { Metrics } from './metrics.js'

export interface WorkerLinkOptions {
  liveCalls: LiveCalls
  metrics: Metrics
  /** Whether the publisher's Redis connection is up now: rtaa_redis_connected is read when the primary collects. */
  redisConnected: () => boolean
  log: Log
  /** The primary got SIGTERM or SIGINT (`signal`): drain as for it. */
  onDrain: (signal: string) => void
  /** The dashboard's hub, when DASHBOARD_ENABLED: its views and listen-ins then span the group. */
  dashboard: DashboardHub | null
}

/** How often a worker with live calls tells the primary their counts: what a call.stop for them would say. */
const COUNTS_INTERVAL_MS = 1000
/** The primary waits up to 5 s for each worker's registry; past this, /metrics fails rather than hangs. */
const SCRAPE_TIMEOUT_MS = 10_000
/** The dashboard waits this long for the group's view, or the answer to a listen-in; past it, the view fails. */
const DASHBOARD_TIMEOUT_MS = 3000

/**
 * A worker's side of the process group (WORKERS > 1): it tells the primary of each call it starts and ends, and of
 * their counts once a second, so that the primary can publish call.stop for them should this process die; it
 * answers the primary's requests for its metrics, asks the primary for the group's when it serves /metrics, and
 * drains when the primary says so. No frame and no call event goes through the primary.
 */
export class WorkerLink {
  readonly #options: WorkerLinkOptions
  /** The live calls the primary knows of, by the number they go by in messages. */
  readonly #calls = new Map<LiveCall, number>()
  #numbered = 0
  readonly #scrapes = new Map<number, { resolve: (text: string) => void, reject: (err: Error) => void, timer: NodeJS.Timeout }>()
  #scraped = 0
  /** The dashboard's looks and listen-ins this worker serves, waiting for the primary; then its listen-ins' sinks. */
  readonly #looks = new Map<string, { resolve: (parts: DashboardPart[]) => void, reject: (err: Error) => void, timer: NodeJS.Timeout }>()
  readonly #listening = new Map<string, { sink: ListenSink, answer: ((started: ListenStarted) => void) | null, timer: NodeJS.Timeout | null }>()
  #asked = 0
  /** The calls of this worker that others listen to, by listen-in id: each one's stop. */
  readonly #taps = new Map<string, () => void>()
  readonly #reporter: NodeJS.Timeout
  readonly #receive = (message: unknown): void => {
    if (isPrimaryMessage(message)) this.#received(message)
  }

  constructor (options: WorkerLinkOptions) {
    this.#options = options
    const { liveCalls, metrics } = options
    liveCalls.on('start', (call) => this.#started(call))
    liveCalls.on('end', (call) => this.#ended(call))
    metrics.answerForGroup(() => this.#scrape())
    options.dashboard?.answerForGroup({
      parts: (tenant) => this.#look(tenant),
      listen: (tenant, call, track, sink) => this.#listen(tenant, call, track, sink)
    })
    process.on('message', this.#receive)
    this.#reporter = setInterval(() => this.#reportCounts(), COUNTS_INTERVAL_MS)
    this.#reporter.unref()
  }

  /** The worker listens: the primary counts it as serving. */
  ready (): void {
    this.#send({ type: 'rtaa:ready' })
  }

  close (): void {
    clearInterval(this.#reporter)
    process.off('message', this.#receive)
    for (const stop of this.#taps.values()) stop()
    this.#taps.clear()
  }

  #started (call: LiveCall): void {
    const { info } = call
    if (info === null) return
    const number = ++this.#numbered
    this.#calls.set(call, number)
    this.#send({
      type: 'rtaa:call-start',
      call: number,
      identity: { interaction_id: info.interactionId, tenant_id: info.tenantId, tenant_verified: info.tenantVerified, vendor: info.vendor, stream_id: info.streamId },
      epoch: info.epoch ?? null,
      started_at: call.snapshot().started_at ?? Date.now(),
      claim: this.#options.liveCalls.claimToken(call),
      tracks: [...info.tracks]
    })
  }

  #ended (call: LiveCall): void {
    const number = this.#calls.get(call)
    if (number === undefined) return
    this.#calls.delete(call)
    this.#send({ type: 'rtaa:call-end', call: number })
  }

  #reportCounts (): void {
    if (this.#calls.size === 0) return
    const counts: Array<[number, CallCounts[]]> = []
    for (const [call, number] of this.#calls) {
      const { tracks } = call.snapshot()
      counts.push([number, (call.info?.tracks ?? []).map((track) => {
        const { frames, bytes, frames_lost: framesLost, gaps, duplicates, reordered, frames_withheld: framesWithheld, bytes_withheld: bytesWithheld } = tracks[track] ?? callTotals({})
        return [frames, bytes, framesLost, gaps, duplicates, reordered, framesWithheld, bytesWithheld]
      })])
    }
    this.#send({ type: 'rtaa:call-counts', counts })
  }

  #received (message: PrimaryMessage): void {
    switch (message.type) {
      case 'rtaa:drain':
        this.#options.onDrain(message.signal)
        break
      case 'rtaa:collect':
        this.#collect(message.id)
        break
      case 'rtaa:scraped': {
        const scrape = this.#scrapes.get(message.id)
        if (scrape === undefined) return
        this.#scrapes.delete(message.id)
        clearTimeout(scrape.timer)
        if ('text' in message) scrape.resolve(message.text)
        else scrape.reject(new Error(`the process group's metrics could not be collected: ${message.error}`))
        break
      }
      case 'rtaa:peek': {
        const part = this.#options.dashboard?.part(message.tenant)
        if (part !== undefined) this.#send({ type: 'rtaa:part', id: message.id, part })
        break
      }
      case 'rtaa:looked': {
        const look = this.#looks.get(message.id)
        if (look === undefined) return
        this.#looks.delete(message.id)
        clearTimeout(look.timer)
        look.resolve(message.parts)
        break
      }
      case 'rtaa:tap':
        this.#tap(message.id, message.tenant, message.call, message.track)
        break
      case 'rtaa:untap':
        this.#taps.get(message.id)?.()
        this.#taps.delete(message.id)
        break
      case 'rtaa:listened': {
        const listen = this.#listening.get(message.id)
        if (listen === undefined || listen.answer === null) return
        if (listen.timer !== null) clearTimeout(listen.timer)
        listen.answer(message.started)
        break
      }
      case 'rtaa:audio': {
        const { pcm } = message
        this.#listening.get(message.id)?.sink.audio(Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength))
        break
      }
      case 'rtaa:listen-end': {
        const listen = this.#listening.get(message.id)
        this.#listening.delete(message.id)
        listen?.sink.end(message.reason)
        break
      }
    }
  }

  /** Every worker's part of a view, this one's included, through the primary. */
  #look (tenant: string | null): Promise<DashboardPart[]> {
    const id = `${process.pid}:${++this.#asked}`
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#looks.delete(id)
        reject(new Error('the primary did not answer with the process group\'s view'))
      }, DASHBOARD_TIMEOUT_MS)
      this.#looks.set(id, { resolve, reject, timer })
      if (!this.#send({ type: 'rtaa:look', id, tenant })) {
        clearTimeout(timer)
        this.#looks.delete(id)
        reject(new Error('the primary is gone'))
      }
    })
  }

  /** A listen-in for a call in whichever worker holds it: its audio comes through the primary. */
  #listen (tenant: string | null, call: string, track: Track, sink: ListenSink): Promise<ListenStart> {
    const id = `${process.pid}:${++this.#asked}`
    return new Promise((resolve) => {
      const answer = (started: ListenStarted): void => {
        const listen = this.#listening.get(id)
        if (listen === undefined) return
        listen.answer = null
        listen.timer = null
        if (!started.listening) {
          this.#listening.delete(id)
          resolve(started)
          return
        }
        resolve({
          ...started,
          stop: () => {
            if (this.#listening.delete(id)) this.#send({ type: 'rtaa:unlisten', id })
          }
        })
      }
      const timer = setTimeout(() => {
        // A tap that answers later must not stay on for no one.
        this.#send({ type: 'rtaa:unlisten', id })
        answer({ listening: false, reason: 'not_found' })
      }, DASHBOARD_TIMEOUT_MS)
      this.#listening.set(id, { sink, answer, timer })
      if (!this.#send({ type: 'rtaa:listen', id, tenant, call, track })) answer({ listening: false, reason: 'not_found' })
    })
  }

  /** Taps a call of this worker for a listen-in another worker serves (or this one, through the primary). */
  #tap (id: string, tenant: string | null, call: string, track: Track): void {
    const dashboard = this.#options.dashboard
    const started = dashboard?.tap(tenant, call, track, {
      audio: (pcm) => this.#send({ type: 'rtaa:audio', id, pcm }),
      end: (reason) => {
        this.#taps.delete(id)
        this.#send({ type: 'rtaa:listen-end', id, reason })
      }
    }) ?? { listening: false, reason: 'not_found' }
    if (!started.listening) {
      this.#send({ type: 'rtaa:tapped', id, started })
      return
    }
    const { stop, ...told } = started
    this.#taps.set(id, stop)
    this.#send({ type: 'rtaa:tapped', id, started: told })
  }

  #collect (id: number): void {
    const { metrics, redisConnected, log } = this.#options
    metrics.redisConnected.set(redisConnected() ? 1 : 0)
    metrics.registry.getMetricsAsJSON().then(
      (snapshot) => this.#send({ type: 'rtaa:metrics', id, metrics: snapshot }),
      (err: unknown) => log.error({ err }, 'collecting this worker\'s metrics failed')
    )
  }

  /** The group's metrics, summed by the primary from every worker's registry and its own. */
  #scrape (): Promise<string> {
    const id = ++this.#scraped
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#scrapes.delete(id)
        reject(new Error('the primary did not answer with the process group\'s metrics'))
      }, SCRAPE_TIMEOUT_MS)
      this.#scrapes.set(id, { resolve, reject, timer })
      if (!this.#send({ type: 'rtaa:scrape', id })) {
        clearTimeout(timer)
        this.#scrapes.delete(id)
        reject(new Error('the primary is gone'))
      }
    })
  }

  /** False when the channel to the primary is closed (the primary is gone: Node then ends this worker too). */
  #send (message: WorkerMessage): boolean {
    if (process.send === undefined || !process.connected) return false
    process.send(message, undefined, undefined, (err: Error | null) => {
      if (err !== null) this.#options.log.debug({ err, message: message.type }, 'message to the primary not sent')
    })
    return true
  }
}
