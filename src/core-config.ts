import { Type, type Static } from '@sinclair/typebox'

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
const REDIS_TRANSPORTS = ['pubsub', 'streams'] as const

/**
 * The gateway's own settings. Each vendor adds its part (SUPPORT_<NAME> and its own settings) in its folder;
 * src/config.ts composes them into the one schema the process loads.
 */
export const CoreConfigSchema = Type.Object({
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8443 }),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
  TLS_CERT_FILE: Type.Optional(Type.String({ minLength: 1 })),
  TLS_KEY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** Plain HTTP for /health, /ready and /metrics only, so probes and scrapes need no certificate; unset: off. */
  ADMIN_PORT: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
  /** Where the admin port listens; unset: HOST. */
  ADMIN_HOST: Type.Optional(Type.String({ minLength: 1 })),

  REDIS_URL: Type.String({ pattern: '^rediss?://', default: 'redis://127.0.0.1:6379' }),
  // No braces: a call's tag in its Redis names is the Cluster hash tag, and it must be the first one.
  REDIS_PREFIX: Type.String({ pattern: '^[^\\s*?\\[\\]{}]*$', default: 'rtaa:' }),
  /** Frames and events wait in memory up to this while Redis is away or stalled; past it the oldest frames go. */
  REDIS_BUFFER_MAX_BYTES: Type.Integer({ minimum: 1024, maximum: 4 * 1024 * 1024 * 1024, default: 64 * 1024 * 1024 }),
  /** A call's dtmf and mark events waiting for Redis past this are dropped and counted; call.start and call.stop are kept. */
  REDIS_BUFFER_MAX_EVENTS_PER_CALL: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 100 }),
  /** A publish unacknowledged for this long means Redis is stalled: /ready fails and a warning is logged. */
  REDIS_STALL_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 2000 }),
  /** How frames and call events travel: pub/sub (PUBLISH, nothing kept) or Redis Streams (XADD, kept and replayable). */
  REDIS_TRANSPORT: Type.Unsafe<(typeof REDIS_TRANSPORTS)[number]>({ type: 'string', enum: REDIS_TRANSPORTS, default: 'pubsub' }),
  /** Comma-separated host:port seeds of a Redis Cluster, checked by parseClusterNodes; unset: the one Redis of REDIS_URL. */
  REDIS_CLUSTER_NODES: Type.Optional(Type.String({ minLength: 1 })),
  /** Streams mode: a call's audio stream keeps about this many frames while the call lives (XADD MAXLEN ~). */
  REDIS_STREAM_MAXLEN: Type.Integer({ minimum: 100, maximum: 10_000_000, default: 15_000 }),
  /** Streams mode: a call's audio stream expires this long after the call ends. */
  REDIS_STREAM_TTL_S: Type.Integer({ minimum: 1, maximum: 30 * 86_400, default: 600 }),
  /** Streams mode: the call events stream keeps about this many events (XADD MAXLEN ~). */
  REDIS_EVENTS_MAXLEN: Type.Integer({ minimum: 100, maximum: 100_000_000, default: 100_000 }),
  /** Processes that serve calls: 1, a number, or auto (one per core). */
  WORKERS: Type.String({ pattern: '^(auto|[1-9][0-9]{0,2})$', default: '1' }),

  JWT_SECRET: Type.Optional(Type.String({ minLength: 32 })),
  JWT_PUBLIC_KEY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  JWT_ISSUER: Type.Optional(Type.String({ minLength: 1 })),
  JWT_AUDIENCE: Type.Optional(Type.String({ minLength: 1 })),
  /** The longest lifetime a token may have: one whose exp lies further ahead than this is refused. */
  JWT_MAX_AGE_S: Type.Integer({ minimum: 60, maximum: 31_536_000, default: 86_400 }),

  /** Comma-separated CIDRs, checked by parseCidrList after the schema. */
  AUTH_IP_ALLOWLIST: Type.String({ default: '127.0.0.0/8,::1/128' }),
  TRUST_PROXY: Type.String({ default: '' }),
  /** Comma-separated key:token pairs, checked by parseCredentials after the schema. */
  BASIC_AUTH_CREDENTIALS: Type.String({ default: '' }),
  /** The accounts each Basic key may stream for (key=ACa|ACb, or key=* for any), checked by parseBasicAccounts. */
  BASIC_AUTH_ACCOUNTS: Type.String({ default: '' }),

  /** Server pings each connection this often, and drops one whose pong is WS_PONG_TIMEOUT_MS late. */
  WS_PING_INTERVAL_MS: Type.Integer({ minimum: 50, maximum: 600_000, default: 30_000 }),
  WS_PONG_TIMEOUT_MS: Type.Integer({ minimum: 50, maximum: 600_000, default: 10_000 }),
  /** A connection with no accepted start this long after its upgrade is closed with 1008, whatever it sends. */
  START_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 10_000 }),
  /** A connection sending audio faster than this multiple of real time (over a 5 s burst) is closed with 1008. */
  INBOUND_MAX_AUDIO_SPEED: Type.Number({ minimum: 1.5, maximum: 1000, default: 4 }),
  /** A connection sending more messages per second than this (over a 5 s burst) is closed with 1008. */
  INBOUND_MAX_MESSAGES_PER_S: Type.Integer({ minimum: 10, maximum: 1_000_000, default: 250 }),
  /** A connection that sends nothing for this long is closed, and its call ends with reason idle. */
  IDLE_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 60_000 }),
  /** On SIGTERM, live calls may go on this long before they are closed with 1001. */
  DRAIN_TIMEOUT_MS: Type.Integer({ minimum: 0, maximum: 7_200_000, default: 600_000 }),
  /** A replica holds each live call's claim in Redis; one that dies without releasing them frees them after this. */
  CALL_CLAIM_TTL_MS: Type.Integer({ minimum: 1000, maximum: 600_000, default: 30_000 }),
  /** Admission control: connections beyond this, or while the event loop lags past the limit, get 503. */
  // 80 % of the calls per core measured at 20 ms frames (docs/operations.md, "Sizing").
  MAX_CONCURRENT_CALLS: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 120 }),
  EVENT_LOOP_DELAY_LIMIT_MS: Type.Integer({ minimum: 10, maximum: 60_000, default: 200 }),

  /** Who may scrape /metrics: loopback and the private ranges a cluster's Prometheus lives in, not the internet. */
  METRICS_ALLOWLIST: Type.String({ default: '127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7' }),
  /** Adds a tenant label to call metrics; only for a bounded number of tenants. */
  METRICS_TENANT_LABEL: Type.Boolean({ default: false }),

  /** The live call dashboard at /dashboard (docs/dashboard.md); it costs nothing while nobody looks. */
  DASHBOARD_ENABLED: Type.Boolean({ default: true }),
  /** Who may open it without a credential: loopback only, narrower than METRICS_ALLOWLIST; checked by parseCidrList. */
  DASHBOARD_ALLOWLIST: Type.String({ default: '127.0.0.0/8,::1/128' }),
  /** Comma-separated user:password pairs of operators, who see every tenant's calls; checked by parseCredentials. */
  DASHBOARD_BASIC_CREDENTIALS: Type.String({ default: '' }),
  /** Listen-in: the dashboard may play a live call's audio; every use is logged with who and which call. */
  DASHBOARD_LISTEN: Type.Boolean({ default: false }),
  /** Feeds and listen-ins open at once, per process; more get 503. */
  DASHBOARD_MAX_VIEWERS: Type.Integer({ minimum: 1, maximum: 1000, default: 10 }),

  /** Outbound audio: at most this much sits unplayed at the vendor, so clear cuts in quickly. */
  PLAYBACK_LEAD_MS: Type.Integer({ minimum: 100, maximum: 10_000, default: 400 }),
  /** Outbound audio waiting in the gateway per call; newer audio beyond it is refused. */
  PLAYBACK_MAX_BUFFER_MS: Type.Integer({ minimum: 1000, maximum: 600_000, default: 60_000 }),
  /** A playback message larger than this is refused and counted, before it is parsed. */
  PLAYBACK_MAX_MESSAGE_BYTES: Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024, default: 2 * 1024 * 1024 }),
  /** Outbound audio waiting in the gateway across all calls; newer audio beyond it is refused. */
  PLAYBACK_MAX_TOTAL_BYTES: Type.Integer({ minimum: 1024 * 1024, maximum: 16 * 1024 * 1024 * 1024, default: 128 * 1024 * 1024 }),

  // An enum rather than a union of literals, so a bad value gets one error listing the choices, not seven.
  LOG_LEVEL: Type.Unsafe<(typeof LOG_LEVELS)[number]>({ type: 'string', enum: LOG_LEVELS, default: 'info' }),
  LOG_FILE: Type.Optional(Type.String({ minLength: 1 })),
  MAX_MESSAGE_BYTES: Type.Integer({ minimum: 1024, maximum: 16 * 1024 * 1024, default: 64 * 1024 })
})

export type CoreConfig = Static<typeof CoreConfigSchema>

/** A configuration the process cannot run with; the server exits 78 with its message. */
export class ConfigError extends Error {
  override name = 'ConfigError'
}
