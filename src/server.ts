import cluster from 'node:cluster'
import closeWithGrace from 'close-with-grace'
import type { Logger } from 'pino'
import { buildAdminApp, buildApp } from './app.js'
import { loadConfig, type Config } from './config.js'
import { ConfigError } from './core-config.js'
import { createLogger } from './logger.js'
import { ProcessGroup, StartFailed, WORKER_MARK, workerCount } from './process-group.js'
import { WorkerLink } from './worker-link.js'

let config: Config
try {
  config = loadConfig()
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  process.stderr.write(`rtaa-ingest: ${err.message}\n`)
  process.exit(78) // EX_CONFIG
}

const workers = workerCount(config.WORKERS)
if (cluster.isPrimary && workers > 1) await supervise(config, workers)
else await serve(config, cluster.isWorker && process.env[WORKER_MARK] !== undefined)

/** Exits as a bad start does: 78 for a bad setting, else 1, with one line on stderr. */
function startFailed (err: unknown): never {
  process.stderr.write(`rtaa-ingest: ${(err as Error).message}\n`)
  process.exit(err instanceof ConfigError ? 78 : 1)
}

/**
 * The gateway itself: one process with WORKERS=1, or one worker of the process group (`inGroup`), which then tells
 * the primary of its calls, answers /metrics for the whole group, and drains when the primary says so.
 */
async function serve (config: Config, inGroup: boolean): Promise<void> {
  let logger: Logger | undefined
  try {
    // Each worker's lines name it, so grep tells the processes apart.
    if (inGroup) logger = createLogger(config).child({ pid: process.pid, worker: cluster.worker?.id })
  } catch (err) {
    startFailed(err)
  }
  const { app, admin } = await buildApp(config, { logger }).then(async (app) => ({ app, admin: await buildAdminApp(app) })).catch(startFailed)

  let drainSignal: string | undefined
  let shuttingDown = false
  // The grace period covers the drain and then the close; past it close-with-grace exits non-zero.
  const grace = closeWithGrace({ delay: config.DRAIN_TIMEOUT_MS + 15_000 }, async ({ signal, err }) => {
    shuttingDown = true
    if (err !== undefined) {
      app.log.error({ err }, 'shutting down after an error')
    } else {
      app.log.info({ signal: signal ?? drainSignal, drain_timeout_ms: config.DRAIN_TIMEOUT_MS }, 'shutting down: draining live calls')
      // What waits for an unreachable Redis may keep trying as long as the drain allows, not only the QUIT timeout.
      app.publisher.flushUntil(Date.now() + config.DRAIN_TIMEOUT_MS)
      await app.liveCalls.drain(config.DRAIN_TIMEOUT_MS)
    }
    await app.close()
  })

  const link = inGroup
    ? new WorkerLink({
      liveCalls: app.liveCalls,
      metrics: app.metrics,
      redisConnected: () => app.publisher.connected,
      dashboard: app.hasDecorator('dashboard') ? app.dashboard : null,
      log: app.log,
      // The primary forwards its signal as a message: a worker that got the signal itself (Ctrl-C reaches the whole
      // process group) is draining already, and a second signal would make it exit at once.
      onDrain: (signal) => {
        if (shuttingDown) return
        drainSignal = signal
        grace.close()
      }
    })
    : null
  if (link !== null) app.addHook('onClose', async () => link.close())

  try {
    await app.listen({ port: config.PORT, host: config.HOST })
    if (admin !== null) await admin.listen({ port: config.ADMIN_PORT, host: config.ADMIN_HOST ?? config.HOST })
  } catch (err) {
    // One fatal line: closing what never listened, nor reached Redis, has nothing to report.
    app.log.fatal({ err }, 'cannot listen')
    await app.close()
    process.exit(1)
  }
  link?.ready()
}

/**
 * WORKERS > 1: this process is the primary. It serves no call; it forks the workers, which run serve(), replaces
 * one that dies, and on SIGTERM or SIGINT has them all drain, exiting once they have (1 if any did not drain cleanly).
 */
async function supervise (config: Config, size: number): Promise<void> {
  let log: Logger
  try {
    log = createLogger(config).child({ pid: process.pid, role: 'primary' })
  } catch (err) {
    startFailed(err)
  }
  const group = new ProcessGroup({ config, size, log })
  // The workers' own grace periods (DRAIN_TIMEOUT_MS + 15 s) end first, so each exits by itself, or is counted as failed.
  const grace = closeWithGrace({
    delay: config.DRAIN_TIMEOUT_MS + 20_000,
    // close-with-grace reports a timeout or a second signal as text, a failed shutdown as an Error: one line each.
    logger: { error: (problem: unknown) => { if (problem instanceof Error) log.error({ err: problem }, 'shutdown failed'); else log.error(String(problem)) } }
  }, async ({ signal, err }) => {
    if (err !== undefined) log.error({ err }, 'shutting down after an error: draining every worker')
    else log.info({ signal, workers: group.size, drain_timeout_ms: config.DRAIN_TIMEOUT_MS }, 'shutting down: draining every worker')
    const clean = await group.drain(signal ?? 'SIGTERM')
    await group.close()
    if (!clean) throw new Error('a worker did not drain cleanly')
    log.info('every worker drained')
  })

  log.info({ workers: size, setting: config.WORKERS }, 'starting workers')
  try {
    await group.start()
  } catch (err) {
    if (!(err instanceof StartFailed)) throw err
    log.fatal({ err }, 'a worker could not start: stopping')
    grace.uninstall()
    await group.drain('SIGTERM')
    await group.close()
    process.exit(err.exitCode)
  }
  log.info({ workers: size }, 'every worker listening')
}
