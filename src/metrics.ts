import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Aggregator } from 'prom-client'

export interface MetricsOptions {
  /** Label call metrics by tenant too; off by default, since tenants are unbounded in number. */
  tenantLabel: boolean
}

/** Call end reasons that become label values; any other vendor reason is `other`, so labels stay bounded. */
const END_REASONS = new Set(['callended', 'stopped', 'disconnected', 'protocol_error', 'internal_error', 'shutdown', 'hangup', 'idle',
  'keepalive_timeout', 'duplicate', 'worker_exited'])

/**
 * Every Prometheus metric of the gateway, in a registry of its own (one per app, so tests can build several).
 * Labels are bounded: vendor, tenant only when enabled, and reason. Never a call id.
 */
export function createMetrics ({ tenantLabel }: MetricsOptions) {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const registers = [registry]
  const call = tenantLabel ? ['vendor', 'tenant'] : ['vendor']
  // Live calls count frames as plain numbers, so a frame costs no label lookup; a scrape folds them in first.
  const folders: Array<() => void> = []
  const collect = (): void => { for (const fold of folders) fold() }
  let exposition = async (): Promise<string> => registry.metrics()

  return {
    registry,
    /** The text /metrics answers with: this registry's, or, in a worker of a process group, the group's. */
    exposition: (): Promise<string> => exposition(),
    /** In a worker of a process group (WORKERS > 1): /metrics answers with `scrape`, the whole group's metrics. */
    answerForGroup (scrape: () => Promise<string>): void {
      exposition = scrape
    },
    /** Runs `fold` before every scrape of the frame counters, to add what live calls have counted since. */
    foldBeforeScrape (fold: () => void): void {
      folders.push(fold)
    },
    /**
     * The label values of a call's metrics. Only a tenant a credential vouches for is a label value; one the client
     * merely names is `other`, so the series stay bounded whatever clients send.
     */
    callLabels (vendor: string, tenantId: string | null, vouched: boolean): Record<string, string> {
      if (!tenantLabel) return { vendor }
      return { vendor, tenant: tenantId === null ? '' : vouched ? tenantId : 'other' }
    },
    endReason (reason: string): string {
      return END_REASONS.has(reason) ? reason : 'other'
    },
    callsActive: new Gauge({ name: 'rtaa_calls_active', help: 'Calls live on this process', labelNames: call, registers }),
    callsStarted: new Counter({ name: 'rtaa_calls_started_total', help: 'Calls started', labelNames: call, registers }),
    callsEnded: new Counter({ name: 'rtaa_calls_ended_total', help: 'Calls ended, by end reason', labelNames: [...call, 'reason'], registers }),
    framesIn: new Counter({ name: 'rtaa_inbound_frames_total', help: 'Audio frames received from vendors', labelNames: call, registers, collect }),
    bytesIn: new Counter({ name: 'rtaa_inbound_bytes_total', help: 'PCM bytes received from vendors, after decoding', labelNames: call, registers, collect }),
    framesPublished: new Counter({ name: 'rtaa_frames_published_total', help: 'Audio frames Redis acknowledged', labelNames: call, registers, collect }),
    publishLatency: new Histogram({
      name: 'rtaa_publish_latency_seconds',
      help: 'From a frame\'s receipt to Redis acknowledging its PUBLISH',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers
    }),
    framesWithheld: new Counter({ name: 'rtaa_frames_withheld_total', help: 'Audio frames received while their call was paused, withheld from Redis', labelNames: call, registers }),
    framesDropped: new Counter({ name: 'rtaa_frames_dropped_total', help: 'Audio frames not published, by reason', labelNames: [...call, 'reason'], registers }),
    connectionsLimited: new Counter({
      name: 'rtaa_connections_limited_total',
      help: 'Connections closed with 1008 for passing a limit: start_timeout, message_rate or audio_rate',
      labelNames: ['vendor', 'reason'],
      registers
    }),
    inputErrors: new Counter({ name: 'rtaa_input_errors_total', help: 'Connections closed for bad input (validation, decoding, order), by reason', labelNames: ['vendor', 'reason'], registers }),
    authFailures: new Counter({ name: 'rtaa_auth_failures_total', help: 'Upgrades refused by authentication, by method and reason', labelNames: ['method', 'reason'], registers }),
    upgradesRefused: new Counter({ name: 'rtaa_upgrades_refused_total', help: 'Upgrades refused by admission control or shutdown, by reason', labelNames: ['reason'], registers }),
    sequenceGaps: new Counter({ name: 'rtaa_sequence_gaps_total', help: 'Vendor chunks missing from the sequence', labelNames: call, registers }),
    sequenceDuplicates: new Counter({ name: 'rtaa_sequence_duplicates_total', help: 'Vendor chunks received twice', labelNames: call, registers }),
    sequenceReorders: new Counter({ name: 'rtaa_sequence_reorders_total', help: 'Vendor chunks received after a later one', labelNames: call, registers }),
    playbackFramesOut: new Counter({ name: 'rtaa_playback_frames_out_total', help: 'Playback media messages sent to vendors', labelNames: ['vendor'], registers }),
    playbackMarksOut: new Counter({ name: 'rtaa_playback_marks_out_total', help: 'Playback marks sent to vendors', labelNames: ['vendor'], registers }),
    playbackDropped: new Counter({ name: 'rtaa_playback_dropped_total', help: 'Playback messages dropped, by reason', labelNames: ['reason'], registers }),
    // With WORKERS > 1 the process group's /metrics takes the worst process for these (the `aggregator`), so the
    // alerts written for one process keep their meaning; everything else sums.
    redisConnected: new Gauge({ name: 'rtaa_redis_connected', help: '1 while the publisher\'s Redis connection is ready, else 0', registers, aggregator: 'min' }),
    redisBufferBytes: new Gauge({ name: 'rtaa_redis_buffer_bytes', help: 'Bytes waiting for Redis: buffered, and sent but not yet acknowledged', registers, aggregator: 'max' }),
    redisStalled: new Gauge({ name: 'rtaa_redis_stalled', help: '1 while a publish has waited longer than REDIS_STALL_TIMEOUT_MS for Redis, else 0', registers, aggregator: 'max' }),
    redisDisconnects: new Counter({ name: 'rtaa_redis_disconnects_total', help: 'Redis connections lost, by connection (publisher, playback, claims)', labelNames: ['connection'], registers }),
    redisPlaybackConnected: new Gauge({
      name: 'rtaa_redis_playback_connected',
      help: '1 while the playback subscriber\'s Redis connection is ready, else 0',
      registers,
      aggregator: 'min'
    }),
    eventsDropped: new Counter({ name: 'rtaa_events_dropped_total', help: 'Call events not published, by event type and reason', labelNames: ['type', 'reason'], registers }),
    playbackBytes: new Gauge({ name: 'rtaa_playback_bytes', help: 'Outbound audio bytes waiting in the gateway, across all calls', registers }),
    dashboardViewers: new Gauge({ name: 'rtaa_dashboard_viewers', help: 'Dashboard feeds and listen-ins open, by kind (feed, listen)', labelNames: ['kind'], registers }),
    dashboardDropped: new Counter({
      name: 'rtaa_dashboard_dropped_total',
      help: 'Dashboard updates and listen-in frames not sent to a viewer that reads too slowly, by kind (update, listen_frame)',
      labelNames: ['kind'],
      registers
    }),
    dashboardRefused: new Counter({ name: 'rtaa_dashboard_refused_total', help: 'Dashboard feeds and listen-ins refused after authentication, by reason', labelNames: ['reason'], registers })
  }
}

export type Metrics = ReturnType<typeof createMetrics>

/** A registry's metrics as plain data (getMetricsAsJSON), as a worker sends them to the primary. */
export type MetricsSnapshot = Awaited<ReturnType<Registry['getMetricsAsJSON']>>

/** The primary's own metrics when WORKERS > 1, beside its createMetrics ones: workers up, and restarts. */
export function createGroupMetrics (registry: Registry) {
  const registers = [registry]
  return {
    workers: new Gauge({ name: 'rtaa_workers', help: 'Worker processes serving: forked and listening, not yet exited', registers }),
    workerRestarts: new Counter({ name: 'rtaa_worker_restarts_total', help: 'Workers forked to replace one that exited unexpectedly', registers })
  }
}

/**
 * prom-client averages the event-loop delay across processes, which hides one lagging worker behind idle ones; the
 * group reports the worst worker's, as the alerts written for one process expect.
 */
const GROUP_AGGREGATORS: Record<string, Aggregator> = {
  nodejs_eventloop_lag_seconds: 'max',
  nodejs_eventloop_lag_mean_seconds: 'max',
  nodejs_eventloop_lag_stddev_seconds: 'max',
  nodejs_eventloop_lag_p50_seconds: 'max',
  nodejs_eventloop_lag_p90_seconds: 'max',
  nodejs_eventloop_lag_p99_seconds: 'max'
}

/**
 * One registry for a process group: each metric aggregated by its `aggregator` (a sum unless it says otherwise; the
 * Redis state gauges take the worst process, see createMetrics), the event-loop delay by its worst process.
 */
export function aggregateGroup (snapshots: MetricsSnapshot[]): Registry {
  const adjusted = snapshots.map((snapshot) => snapshot.map((metric) => {
    const aggregator = GROUP_AGGREGATORS[metric.name]
    return aggregator === undefined ? metric : { ...metric, aggregator }
  }))
  return AggregatorRegistry.aggregate(adjusted)
}

/**
 * What exited processes had counted: `kept` plus the counters and histograms of `snapshot` (an exited worker's last),
 * summed. A replacement counts from 0; without these, the group's sums would fall, which Prometheus reads as a
 * counter reset. Gauges go with their process.
 */
export function keepCounted (kept: MetricsSnapshot, snapshot: MetricsSnapshot): MetricsSnapshot {
  const counted = snapshot.filter((metric) => {
    const type = metric.type as unknown as string
    return type === 'counter' || type === 'histogram'
  })
  const summed = AggregatorRegistry.aggregate([kept, counted])
  // aggregate() registers plain values: each metric's get() returns them at once, with no collection to wait for.
  return summed.getMetricsAsArray().map((metric) => (metric as unknown as { get: () => MetricsSnapshot[number] }).get())
}
