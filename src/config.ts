import { existsSync } from 'node:fs'
import { Type, type Static } from '@sinclair/typebox'
import envSchema from 'env-schema'
import { parseCidrList } from './auth/ip-allowlist.js'
import { parseCredentials } from './auth/basic-credentials.js'

const SampleRate = Type.Unsafe<8000 | 16000 | 24000>({ type: 'integer', enum: [8000, 16000, 24000] })
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

export const ConfigSchema = Type.Object({
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8443 }),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
  TLS_CERT_FILE: Type.Optional(Type.String({ minLength: 1 })),
  TLS_KEY_FILE: Type.Optional(Type.String({ minLength: 1 })),

  REDIS_URL: Type.String({ pattern: '^rediss?://', default: 'redis://127.0.0.1:6379' }),
  REDIS_PREFIX: Type.String({ pattern: '^[^\\s*?\\[\\]]*$', default: 'rtaa:' }),
  /** Frames and events wait in memory up to this while Redis is away or stalled; past it the oldest frames go. */
  REDIS_BUFFER_MAX_BYTES: Type.Integer({ minimum: 1024, maximum: 4 * 1024 * 1024 * 1024, default: 64 * 1024 * 1024 }),

  SUPPORT_EXOTEL: Type.Boolean({ default: true }),
  EXOTEL_DEFAULT_SAMPLE_RATE: { ...SampleRate, default: 8000 },
  SUPPORT_TWILIO: Type.Boolean({ default: true }),
  /** With it, Twilio connections are admitted by X-Twilio-Signature; without it, by the IP allowlist. */
  TWILIO_AUTH_TOKEN: Type.Optional(Type.String({ minLength: 16 })),
  /** The native protocol needs a JWT key, so it is off until one is configured. */
  SUPPORT_NATIVE: Type.Boolean({ default: false }),
  JWT_SECRET: Type.Optional(Type.String({ minLength: 32 })),
  JWT_PUBLIC_KEY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  JWT_ISSUER: Type.Optional(Type.String({ minLength: 1 })),
  JWT_AUDIENCE: Type.Optional(Type.String({ minLength: 1 })),

  /** Comma-separated CIDRs, checked by parseCidrList after the schema. */
  AUTH_IP_ALLOWLIST: Type.String({ default: '127.0.0.0/8,::1/128' }),
  TRUST_PROXY: Type.String({ default: '' }),
  /** Comma-separated key:token pairs, checked by parseCredentials after the schema. */
  BASIC_AUTH_CREDENTIALS: Type.String({ default: '' }),

  /** Server pings each connection this often, and drops one whose pong is WS_PONG_TIMEOUT_MS late. */
  WS_PING_INTERVAL_MS: Type.Integer({ minimum: 50, maximum: 600_000, default: 30_000 }),
  WS_PONG_TIMEOUT_MS: Type.Integer({ minimum: 50, maximum: 600_000, default: 10_000 }),
  /** A connection that sends nothing for this long is closed, and its call ends with reason idle. */
  IDLE_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 60_000 }),
  /** On SIGTERM, live calls may go on this long before they are closed with 1001. */
  DRAIN_TIMEOUT_MS: Type.Integer({ minimum: 0, maximum: 7_200_000, default: 600_000 }),
  /** Admission control: connections beyond this, or while the event loop lags past the limit, get 503. */
  MAX_CONCURRENT_CALLS: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 500 }),
  EVENT_LOOP_DELAY_LIMIT_MS: Type.Integer({ minimum: 10, maximum: 60_000, default: 200 }),

  /** Who may scrape /metrics: loopback and the private ranges a cluster's Prometheus lives in, not the internet. */
  METRICS_ALLOWLIST: Type.String({ default: '127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7' }),
  /** Adds a tenant label to call metrics; only for a bounded number of tenants. */
  METRICS_TENANT_LABEL: Type.Boolean({ default: false }),

  /** Outbound audio: at most this much sits unplayed at the vendor, so clear cuts in quickly. */
  PLAYBACK_LEAD_MS: Type.Integer({ minimum: 100, maximum: 10_000, default: 400 }),
  /** Outbound audio waiting in the gateway per call; newer audio beyond it is refused. */
  PLAYBACK_MAX_BUFFER_MS: Type.Integer({ minimum: 1000, maximum: 600_000, default: 60_000 }),

  // An enum rather than a union of literals, so a bad value gets one error listing the choices, not seven.
  LOG_LEVEL: Type.Unsafe<(typeof LOG_LEVELS)[number]>({ type: 'string', enum: LOG_LEVELS, default: 'info' }),
  LOG_FILE: Type.Optional(Type.String({ minLength: 1 })),
  MAX_MESSAGE_BYTES: Type.Integer({ minimum: 1024, maximum: 16 * 1024 * 1024, default: 64 * 1024 })
})

export type Config = Static<typeof ConfigSchema>

export class ConfigError extends Error {
  override name = 'ConfigError'
}

export interface LoadConfigOptions {
  /** Read these dotenv files, first one wins; the process environment beats them all. */
  dotenvFiles?: string[]
  /** Values that take the place of the process environment (tests). */
  env?: Record<string, string | undefined>
}

/** Reads, validates and defaults the configuration; throws ConfigError naming the bad variable. */
export function loadConfig (options: LoadConfigOptions = {}): Config {
  const { dotenvFiles = ['.env.local', '.env'], env } = options
  const files = dotenvFiles.filter((file) => existsSync(file))
  let config: Config
  try {
    config = envSchema<Config>({
      schema: { ...ConfigSchema },
      env: env === undefined,
      data: env ?? {},
      dotenv: env === undefined && files.length > 0 ? { path: files, quiet: true } : false
    })
  } catch (err) {
    throw new ConfigError(`invalid configuration: ${describe(err as SchemaError)}`)
  }
  check('AUTH_IP_ALLOWLIST', () => parseCidrList(config.AUTH_IP_ALLOWLIST))
  check('TRUST_PROXY', () => parseCidrList(config.TRUST_PROXY))
  check('METRICS_ALLOWLIST', () => parseCidrList(config.METRICS_ALLOWLIST))
  check('BASIC_AUTH_CREDENTIALS', () => parseCredentials(config.BASIC_AUTH_CREDENTIALS))
  if ((config.TLS_CERT_FILE === undefined) !== (config.TLS_KEY_FILE === undefined)) {
    throw new ConfigError('invalid configuration: TLS_CERT_FILE and TLS_KEY_FILE must be set together')
  }
  if (config.JWT_SECRET !== undefined && config.JWT_PUBLIC_KEY_FILE !== undefined) {
    throw new ConfigError('invalid configuration: set JWT_SECRET (HS256) or JWT_PUBLIC_KEY_FILE (RS256, ES256), not both')
  }
  if (config.SUPPORT_NATIVE && config.JWT_SECRET === undefined && config.JWT_PUBLIC_KEY_FILE === undefined) {
    throw new ConfigError('invalid configuration: SUPPORT_NATIVE=true needs JWT_SECRET or JWT_PUBLIC_KEY_FILE')
  }
  return config
}

interface SchemaError extends Error {
  errors?: Array<{ instancePath: string, keyword: string, message?: string, params: { allowedValues?: unknown[] } }>
}

/** Ajv's text, with the choices spelled out for enums; values are never echoed, since some are secrets. */
function describe (err: SchemaError): string {
  if (err.errors === undefined) return err.message
  return err.errors.map(({ instancePath, keyword, message, params }) => {
    const choices = keyword === 'enum' && params.allowedValues !== undefined ? ` (${params.allowedValues.join(', ')})` : ''
    return `env${instancePath} ${message ?? 'is invalid'}${choices}`
  }).join(', ')
}

function check (variable: string, parse: () => unknown): void {
  try {
    parse()
  } catch (err) {
    throw new ConfigError(`invalid configuration: env/${variable} ${(err as Error).message}`)
  }
}
