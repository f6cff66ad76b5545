import { existsSync } from 'node:fs'
import { Type, type Static, type TObject } from '@sinclair/typebox'
import envSchema from 'env-schema'
import { parseCredentials } from './auth/basic-credentials.js'
import { parseCidrList } from './auth/ip-allowlist.js'
import { parseBasicAccounts } from './auth/tenancy.js'
import { parseClusterNodes } from './cluster-nodes.js'
import { ConfigError, CoreConfigSchema, type CoreConfig } from './core-config.js'
import { builtInVendors } from './vendors/built-in-vendors.js'
import type { Vendor } from './vendors/vendor.js'

type VendorSettings<V extends readonly Vendor[]> = { -readonly [K in keyof V]: V[K]['config'] }

function settingsOf<V extends readonly Vendor[]> (vendors: V): VendorSettings<V> {
  return vendors.map((vendor) => vendor.config) as VendorSettings<V>
}

/** The process's whole configuration: the core's settings and each built-in vendor's part. */
export const ConfigSchema = Type.Composite([CoreConfigSchema, ...settingsOf(builtInVendors)])

export type Config = Static<typeof ConfigSchema>

export interface LoadConfigOptions {
  /** Read these dotenv files, first one wins; the process environment beats them all. */
  dotenvFiles?: string[]
  /** Values that take the place of the process environment (tests). */
  env?: Record<string, string | undefined>
  /** The vendors whose parts join the schema; the built-in ones unless a test adds its own. */
  vendors?: readonly Vendor[]
}

/** Reads, validates and defaults the configuration; throws ConfigError naming the bad variable. */
export function loadConfig (options: LoadConfigOptions = {}): Config {
  const vendors: readonly Vendor[] = options.vendors ?? builtInVendors
  const schema = vendors === builtInVendors ? ConfigSchema : Type.Composite([CoreConfigSchema, ...vendors.map(({ config }) => config)])
  const config = readSettings<Config>(schema, options)
  check('AUTH_IP_ALLOWLIST', () => parseCidrList(config.AUTH_IP_ALLOWLIST))
  check('TRUST_PROXY', () => parseCidrList(config.TRUST_PROXY))
  check('METRICS_ALLOWLIST', () => parseCidrList(config.METRICS_ALLOWLIST))
  check('DASHBOARD_ALLOWLIST', () => parseCidrList(config.DASHBOARD_ALLOWLIST))
  check('DASHBOARD_BASIC_CREDENTIALS', () => parseCredentials(config.DASHBOARD_BASIC_CREDENTIALS))
  if (config.REDIS_CLUSTER_NODES !== undefined) check('REDIS_CLUSTER_NODES', () => parseClusterNodes(config.REDIS_CLUSTER_NODES as string))
  check('BASIC_AUTH_CREDENTIALS', () => parseCredentials(config.BASIC_AUTH_CREDENTIALS))
  check('BASIC_AUTH_ACCOUNTS', () => parseBasicAccounts(config.BASIC_AUTH_ACCOUNTS, parseCredentials(config.BASIC_AUTH_CREDENTIALS).map(({ key }) => key)))
  if ((config.TLS_CERT_FILE === undefined) !== (config.TLS_KEY_FILE === undefined)) {
    throw new ConfigError('invalid configuration: TLS_CERT_FILE and TLS_KEY_FILE must be set together')
  }
  if (config.JWT_SECRET !== undefined && config.JWT_PUBLIC_KEY_FILE !== undefined) {
    throw new ConfigError('invalid configuration: set JWT_SECRET (HS256) or JWT_PUBLIC_KEY_FILE (RS256, ES256), not both')
  }
  for (const vendor of vendors) {
    const problem = vendor.check?.(config as Static<TObject> & CoreConfig) ?? null
    if (problem !== null) throw new ConfigError(`invalid configuration: ${problem}`)
  }
  return config
}

/**
 * Only the named settings, read from the same places and checked by the same schema: a tool that needs two of them
 * is not stopped by a bad value in another (the cross-setting checks of loadConfig are not run).
 */
export function loadSettings<K extends keyof Config> (keys: readonly K[], options: Omit<LoadConfigOptions, 'vendors'> = {}): Pick<Config, K> {
  return readSettings<Pick<Config, K>>(Type.Pick(ConfigSchema, keys as K[]), options)
}

function readSettings<T> (schema: TObject, { dotenvFiles = ['.env.local', '.env'], env }: LoadConfigOptions): T {
  const files = dotenvFiles.filter((file) => existsSync(file))
  try {
    return envSchema<T>({
      schema: { ...schema },
      env: env === undefined,
      data: env ?? {},
      dotenv: env === undefined && files.length > 0 ? { path: files, quiet: true } : false
    })
  } catch (err) {
    throw new ConfigError(`invalid configuration: ${describe(err as SchemaError)}`)
  }
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
