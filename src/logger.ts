import { mkdirSync, openSync } from 'node:fs'
import { dirname } from 'node:path'
import pino, { type Logger } from 'pino'
import { ConfigError, type CoreConfig } from './core-config.js'

/** The logging surface the Fastify-free code needs; both a pino Logger and Fastify's request.log fit it. */
export interface Log extends Pick<pino.BaseLogger, 'level' | 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'> {
  child (bindings: pino.Bindings): Log
}

/** Whether debug lines are written, so work done only for them can be skipped. */
export function debugEnabled (log: Log): boolean {
  return log.level === 'debug' || log.level === 'trace'
}

/** Query parameters that may carry a credential; their values never reach a log line. */
const SECRET_QUERY_KEYS = new Set(['access_token', 'token', 'jwt', 'key', 'password', 'secret', 'signature', 'sig'])

const REDACTED = '[redacted]'

/** A URL's userinfo password, e.g. redis://:secret@redis:6379. */
const URL_PASSWORD = /^([a-z][a-z0-9+.-]*:\/\/[^/@:]*:)[^/]*@/i

/** Replaces secret query values in a request URL (/v1/ingest?access_token=eyJ...) and the password of a URL's userinfo. */
export function redactUrl (url: string): string {
  url = url.replace(URL_PASSWORD, `$1${REDACTED}@`)
  const query = url.indexOf('?')
  if (query === -1) return url
  const params = new URLSearchParams(url.slice(query + 1))
  let changed = false
  for (const key of params.keys()) {
    if (SECRET_QUERY_KEYS.has(key.toLowerCase())) {
      params.set(key, REDACTED)
      changed = true
    }
  }
  return changed ? `${url.slice(0, query)}?${params.toString()}` : url
}

interface LoggedRequest {
  method: string
  url: string
  ip?: string
  socket?: { remotePort?: number }
  headers?: Record<string, unknown>
}

export const loggerOptions = (level: CoreConfig['LOG_LEVEL']): pino.LoggerOptions => ({
  level,
  base: { service: 'rtaa-ingest' },
  redact: {
    paths: ['req.headers.authorization', 'req.headers["proxy-authorization"]', 'req.headers.cookie', '*.password', '*.token'],
    censor: REDACTED
  },
  serializers: {
    req (request: LoggedRequest) {
      return {
        method: request.method,
        url: redactUrl(request.url),
        remoteAddress: request.ip,
        remotePort: request.socket?.remotePort,
        userAgent: request.headers?.['user-agent']
      }
    }
  }
})

/**
 * JSON to stdout and, with LOG_FILE, appended to that file too, so operators can tail -f and grep it.
 * The file is opened here, synchronously, so a path the process cannot write stops it at start with a ConfigError.
 */
export function createLogger (config: Pick<CoreConfig, 'LOG_LEVEL' | 'LOG_FILE'>): Logger {
  const options = loggerOptions(config.LOG_LEVEL)
  if (config.LOG_FILE === undefined) return pino(options)
  const level = config.LOG_LEVEL === 'silent' ? 'fatal' : config.LOG_LEVEL
  return pino(options, pino.multistream([
    { level, stream: pino.destination({ dest: 1, sync: false }) },
    { level, stream: pino.destination({ dest: openLogFile(config.LOG_FILE), sync: false }) }
  ]))
}

function openLogFile (path: string): number {
  try {
    mkdirSync(dirname(path), { recursive: true })
    return openSync(path, 'a')
  } catch (err) {
    throw new ConfigError(`invalid configuration: env/LOG_FILE cannot be opened for appending: ${(err as Error).message}`)
  }
}
