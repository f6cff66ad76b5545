import { readFileSync } from 'node:fs'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import authPlugin from '../plugins/auth.js'
import dashboardPlugin from '../plugins/dashboard.js'
import forwardedForPlugin from '../plugins/forwarded-for.js'
import liveCallsPlugin from '../plugins/live-calls.js'
import metricsPlugin from '../plugins/metrics.js'
import publisherPlugin from '../plugins/publisher.js'
import vendorsPlugin from '../plugins/vendors.js'
import websocketPlugin from '../plugins/websocket.js'
import dashboardRoutes from '../routes/dashboard.js'
import healthRoutes from '../routes/health.js'
import ingestRoutes from '../routes/ingest.js'
import metricsRoutes from '../routes/metrics.js'
import { createIpAllowlist, parseCidrList } from './auth/ip-allowlist.js'
import type { Config } from './config.js'
import { ConfigError } from './core-config.js'
import { createLogger, redactUrl } from './logger.js'
import { builtInVendors } from './vendors/built-in-vendors.js'
import type { Vendor } from './vendors/vendor.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
  }
}

export interface BuildAppOptions {
  /** A logger to use instead of the one built from LOG_LEVEL and LOG_FILE (tests read its lines). */
  logger?: Logger
  /** The vendors to serve, the list the configuration was loaded with; the built-in ones by default. */
  vendors?: readonly Vendor[]
}

/** Exotel drops a session whose handshake takes over 10 s, so the gateway gives a request no longer. */
const HANDSHAKE_TIMEOUT_MS = 10_000

/**
 * Node cuts a request whose headers (headersTimeout, 60 s by default) or whole request (requestTimeout) take too
 * long only when it checks its connections, every connectionsCheckingInterval (30 s by default): a client sending a
 * byte every few seconds held its socket for 30 s. Checked every second, it is cut at 10-11 s with a 408.
 */
const NODE_SERVER_TIMEOUTS = { headersTimeout: HANDSHAKE_TIMEOUT_MS, connectionsCheckingInterval: 1000 }

/** An HTTP socket silent this long is closed; a request (an upgrade's included) gets this long in all. */
const SERVER_TIMEOUTS = { connectionTimeout: HANDSHAKE_TIMEOUT_MS, requestTimeout: HANDSHAKE_TIMEOUT_MS, keepAliveTimeout: 5_000 }

/** Builds the gateway from a validated config, ready to listen; it never listens itself. */
export async function buildApp (config: Config, options: BuildAppOptions = {}): Promise<FastifyInstance> {
  const trustedProxies = parseCidrList(config.TRUST_PROXY)
  const loggerInstance: FastifyBaseLogger = options.logger ?? createLogger(config)
  const fastifyOptions = {
    loggerInstance,
    // Fastify (proxy-addr) walks X-Forwarded-For only through these hops; from anyone else the header is ignored.
    // Matched as the allowlists are: proxy-addr's own matcher refuses ::/0 and matches no IPv4 hop with it.
    trustProxy: trustedProxies.length > 0 ? createIpAllowlist(trustedProxies) : false,
    ...SERVER_TIMEOUTS
  }
  // Node's own server options go in `http`, or with the certificate in `https`.
  const tls = readTls(config)
  const app: FastifyInstance = tls === null
    ? Fastify({ ...fastifyOptions, http: NODE_SERVER_TIMEOUTS })
    : Fastify({ ...fastifyOptions, https: { ...tls, ...NODE_SERVER_TIMEOUTS } })

  app.decorate('config', config)
  await app.register(metricsPlugin)
  await app.register(publisherPlugin)
  await app.register(liveCallsPlugin)
  await app.register(websocketPlugin)
  await app.register(forwardedForPlugin)
  await app.register(vendorsPlugin, { vendors: options.vendors ?? builtInVendors })
  await app.register(authPlugin)
  if (config.DASHBOARD_ENABLED) await app.register(dashboardPlugin)

  app.setNotFoundHandler(notFound)

  await app.register(healthRoutes)
  await app.register(metricsRoutes)
  await app.register(ingestRoutes)
  if (config.DASHBOARD_ENABLED) await app.register(dashboardRoutes)
  return app
}

/**
 * The admin port, when ADMIN_PORT is set: /health, /ready and /metrics of the gateway `app`, over plain HTTP, so the
 * kubelet and Prometheus need no certificate when the ingest port serves TLS. It takes no WebSocket, and its client
 * address is the socket peer (no TRUST_PROXY): METRICS_ALLOWLIST holds here too. It closes with `app`; it never
 * listens itself.
 */
export async function buildAdminApp (app: FastifyInstance): Promise<FastifyInstance | null> {
  const { config } = app
  if (config.ADMIN_PORT === undefined) return null
  if (config.ADMIN_PORT === config.PORT) throw new ConfigError('invalid configuration: env/ADMIN_PORT must differ from PORT')
  const admin = Fastify({ loggerInstance: app.log.child({ server: 'admin' }), ...SERVER_TIMEOUTS, http: NODE_SERVER_TIMEOUTS })
  // The routes read the gateway's own state: the same readiness, the same metrics registry.
  admin.decorate('config', config)
  admin.decorate('metrics', app.metrics)
  admin.decorate('publisher', app.publisher)
  admin.decorate('liveCalls', app.liveCalls)
  // Node hands an upgrade to the routes as a plain GET when no one listens for upgrades; it is refused instead.
  admin.addHook('onRequest', async (request, reply) => {
    if (request.headers.upgrade === undefined) return
    request.log.warn({ url: redactUrl(request.url) }, 'upgrade refused: no WebSocket on the admin port')
    return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: 'no WebSocket on the admin port' })
  })
  admin.setNotFoundHandler(notFound)
  await admin.register(healthRoutes)
  await admin.register(metricsRoutes)
  app.addHook('onClose', async () => admin.close())
  return admin
}

/** Fastify's own 404 echoes the URL into the log line and the body; a token in the query must reach neither. */
async function notFound (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  request.log.info({ method: request.method, url: redactUrl(request.url) }, 'route not found')
  return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: 'no such route' })
}

function readTls (config: Config): { cert: Buffer, key: Buffer } | null {
  if (config.TLS_CERT_FILE === undefined || config.TLS_KEY_FILE === undefined) return null
  return { cert: readConfigFile('TLS_CERT_FILE', config.TLS_CERT_FILE), key: readConfigFile('TLS_KEY_FILE', config.TLS_KEY_FILE) }
}

function readConfigFile (variable: string, path: string): Buffer {
  try {
    return readFileSync(path)
  } catch (err) {
    throw new ConfigError(`invalid configuration: env/${variable} cannot be read: ${(err as Error).message}`)
  }
}
