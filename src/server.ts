import closeWithGrace from 'close-with-grace'
import { buildAdminApp, buildApp } from './app.js'
import { loadConfig, type Config } from './config.js'
import { ConfigError } from './core-config.js'

let config: Config
try {
  config = loadConfig()
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  process.stderr.write(`rtaa-ingest: ${err.message}\n`)
  process.exit(78) // EX_CONFIG
}

const { app, admin } = await buildApp(config).then(async (app) => ({ app, admin: await buildAdminApp(app) })).catch((err: unknown) => {
  process.stderr.write(`rtaa-ingest: ${(err as Error).message}\n`)
  process.exit(err instanceof ConfigError ? 78 : 1)
})

// The grace period covers the drain and then the close; past it close-with-grace exits non-zero.
closeWithGrace({ delay: config.DRAIN_TIMEOUT_MS + 15_000 }, async ({ signal, err }) => {
  if (err !== undefined) {
    app.log.error({ err }, 'shutting down after an error')
  } else {
    app.log.info({ signal, drain_timeout_ms: config.DRAIN_TIMEOUT_MS }, 'shutting down: draining live calls')
    // What waits for an unreachable Redis may keep trying as long as the drain allows, not only the QUIT timeout.
    app.publisher.flushUntil(Date.now() + config.DRAIN_TIMEOUT_MS)
    await app.liveCalls.drain(config.DRAIN_TIMEOUT_MS)
  }
  await app.close()
})

try {
  await app.listen({ port: config.PORT, host: config.HOST })
  if (admin !== null) await admin.listen({ port: config.ADMIN_PORT, host: config.ADMIN_HOST ?? config.HOST })
} catch (err) {
  // One fatal line: closing what never listened, nor reached Redis, has nothing to report.
  app.log.fatal({ err }, 'cannot listen')
  await app.close()
  process.exit(1)
}
