import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import pino from 'pino'
import type { Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { loggerOptions } from '../../src/logger.js'
import type { Vendor } from '../../src/vendors/vendor.js'
import { Subscriber } from './subscriber.js'
import { Collected } from './waiter.js'

export type LogLine = Record<string, unknown> & { msg?: string, level: number }

export interface Gateway {
  app: FastifyInstance
  /** http(s)://127.0.0.1:port */
  url: string
  /** ws(s)://127.0.0.1:port */
  wsUrl: string
  logs: Collected<LogLine>
  prefix: string
}

let counter = 0

/**
 * Builds the real app from environment-style config, as the server does, and listens on an ephemeral port.
 * Each gateway gets its own REDIS_PREFIX, so tests sharing a redis-server never see each other's calls.
 * `vendors` replaces the built-in list, for a test's own vendor.
 */
export async function startGateway (t: Test, redisUrl: string, env: Record<string, string> = {},
  vendors?: readonly Vendor[]): Promise<Gateway> {
  const prefix = env.REDIS_PREFIX ?? `test${process.pid}-${++counter}:`
  // A machine loaded by other tests must not turn a test's calls away as "under pressure"; tests of admission set it.
  const config = loadConfig({ env: { REDIS_URL: redisUrl, REDIS_PREFIX: prefix, LOG_LEVEL: 'debug', EVENT_LOOP_DELAY_LIMIT_MS: '60000', ...env }, dotenvFiles: [], vendors })
  const logs = new Collected<LogLine>()
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') logs.push(JSON.parse(line) as LogLine)
      done()
    }
  })
  const app = await buildApp(config, { logger: pino(loggerOptions(config.LOG_LEVEL), stream), vendors })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const scheme = config.TLS_CERT_FILE === undefined ? '' : 's'
  return { app, url: `http${scheme}://127.0.0.1:${port}`, wsUrl: `ws${scheme}://127.0.0.1:${port}`, logs, prefix }
}

/**
 * Waits until the app's publisher and playback subscriber have connected to Redis, so /ready answers 200 (from the
 * log lines, so LOG_LEVEL must show info).
 */
export async function waitReady (gateway: Gateway): Promise<void> {
  if (gateway.app.publisher.problems.length === 0) return
  await gateway.logs.waitFor((line) => line.msg === 'redis connected', 'redis connected')
  await gateway.logs.waitFor((line) => line.msg === 'playback subscriber connected', 'playback subscriber connected')
}

/** The usual start of a call test: a gateway connected to Redis, and a subscriber to everything it publishes. */
export async function startListenedGateway (t: Test, redisUrl: string, env: Record<string, string> = {},
  vendors?: readonly Vendor[]): Promise<{ gateway: Gateway, subscriber: Subscriber }> {
  const gateway = await startGateway(t, redisUrl, env, vendors)
  const subscriber = await Subscriber.start(t, redisUrl, gateway.prefix)
  await waitReady(gateway)
  return { gateway, subscriber }
}
