import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ListenEnd, Viewer } from '../src/dashboard/dashboard-view.js'
import type { Track } from '../src/track.js'

/** A feed sends a view this often, and soon after a call of this process starts or ends. */
const FEED_INTERVAL_MS = 500
const FEED_SOON_MS = 50
/** A viewer that has not read this much of its feed gets no more updates until it has (each is counted). */
const FEED_MAX_UNSENT_BYTES = 1024 * 1024
/** A listener that has not read this much audio (in ms) loses frames until it has (each is counted). */
const LISTEN_MAX_UNSENT_MS = 2000

const TRACKS: Track[] = ['inbound', 'outbound']

const ListenQuery = Type.Object({
  /** The call's id in the feed: its tag, `{tenant:interaction_id}`. */
  call: Type.String({ minLength: 3, maxLength: 300 }),
  // An enum rather than a union of literals, so a bad value gets one error naming the choices.
  track: Type.Unsafe<Track>({ type: 'string', enum: TRACKS, default: 'inbound' })
})

/**
 * The live call dashboard (docs/dashboard.md): the page, its feed of views (Server-Sent Events), one view as JSON,
 * and listen-in. Each is refused unless auth.authenticateViewer admits the client, and a viewer with a tenant sees
 * that tenant's calls only. Feeds and listen-ins together are held to DASHBOARD_MAX_VIEWERS per process.
 */
const dashboardRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { dashboard, liveCalls, metrics, config } = fastify
  const page = readPage()
  /** What ends each open feed and listen-in when the server closes. */
  const open = new Set<() => void>()
  /** Each open feed's "send soon", told when a call of this process starts or ends; one listener for them all. */
  const feeds = new Set<() => void>()
  const callsChanged = (): void => { for (const soon of feeds) soon() }
  const followCalls = (follow: boolean): void => {
    liveCalls[follow ? 'on' : 'off']('start', callsChanged)
    liveCalls[follow ? 'on' : 'off']('end', callsChanged)
  }

  fastify.addHook('onRequest', fastify.auth.authenticateViewer)
  fastify.addHook('preClose', async () => {
    for (const close of [...open]) close()
  })

  fastify.get('/dashboard', async (_request, reply) => {
    return reply.headers(page.headers).type('text/html; charset=utf-8').send(page.html)
  })

  fastify.get('/dashboard/view', async (request) => dashboard.view(viewerOf(request)))

  // A HEAD of a stream would be held open like the stream itself.
  fastify.get('/dashboard/feed', { exposeHeadRoute: false }, async (request, reply) => {
    if (full(request, reply, 'feed')) return reply
    const viewer = viewerOf(request)
    const raw = streamTo(request, reply, { 'content-type': 'text/event-stream; charset=utf-8' })
    raw.write(`retry: ${FEED_INTERVAL_MS * 4}\n\n`)
    let sending = false
    let soon: NodeJS.Timeout | null = null
    const send = (): void => {
      if (sending) return
      // A viewer that has not read what it was sent gets nothing new, and no view is built for it.
      if (raw.writableLength > FEED_MAX_UNSENT_BYTES) {
        metrics.dashboardDropped.inc({ kind: 'update' })
        return
      }
      sending = true
      dashboard.view(viewer).then((view) => {
        // A view taken while the feed closed (the viewer left, the server closes) goes nowhere.
        if (open.has(close)) raw.write(`event: view\ndata: ${JSON.stringify(view)}\n\n`)
      }, (err: unknown) => {
        request.log.warn({ err }, 'dashboard view failed')
        if (open.has(close)) raw.write(`event: problem\ndata: ${JSON.stringify({ message: (err as Error).message })}\n\n`)
      }).finally(() => { sending = false })
    }
    const sendSoon = (): void => {
      soon ??= setTimeout(() => {
        soon = null
        send()
      }, FEED_SOON_MS)
    }
    const timer = setInterval(send, FEED_INTERVAL_MS)
    if (feeds.size === 0) followCalls(true)
    feeds.add(sendSoon)
    const close = (): void => {
      if (!open.delete(close)) return
      clearInterval(timer)
      if (soon !== null) clearTimeout(soon)
      feeds.delete(sendSoon)
      if (feeds.size === 0) followCalls(false)
      metrics.dashboardViewers.dec({ kind: 'feed' })
      request.log.info({ viewer: viewer.who }, 'dashboard feed closed')
      raw.end()
    }
    open.add(close)
    metrics.dashboardViewers.inc({ kind: 'feed' })
    raw.on('close', close)
    request.log.info({ viewer: viewer.who }, 'dashboard feed opened')
    send()
  })

  fastify.get('/dashboard/listen', { exposeHeadRoute: false, schema: { querystring: ListenQuery } }, async (request, reply) => {
    const viewer = viewerOf(request)
    const { call, track } = request.query
    if (!dashboard.listenEnabled) {
      metrics.dashboardRefused.inc({ reason: 'listen_disabled' })
      request.log.warn({ viewer: viewer.who, call, track }, 'listen-in refused: DASHBOARD_LISTEN is off')
      return reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: 'listen-in is off (DASHBOARD_LISTEN)' })
    }
    if (full(request, reply, 'listen')) return reply
    const startedAt = Date.now()
    let bytes = 0
    let dropped = 0
    let maxUnsent = 0
    let stop: (() => void) | null = null
    // The viewer may leave, the call end or the server close while the listen-in is being set up (with WORKERS > 1,
    // an exchange with other processes): each ends it once, whenever it comes.
    const state: { phase: 'starting' | 'streaming' | 'ended', endedEarly: ListenEnd | null } = { phase: 'starting', endedEarly: null }
    const release = (): void => {
      open.delete(closeListen)
      metrics.dashboardViewers.dec({ kind: 'listen' })
    }
    const end = (reason: ListenEnd): void => {
      if (state.phase === 'ended') return
      const streaming = state.phase === 'streaming'
      state.phase = 'ended'
      release()
      if (!streaming) {
        state.endedEarly = reason
        return
      }
      stop?.()
      request.log.info({ viewer: viewer.who, call, track, reason, duration_ms: Date.now() - startedAt, bytes, frames_dropped: dropped }, 'listen-in ended')
      reply.raw.end()
    }
    const closeListen = (): void => end('shutdown')
    metrics.dashboardViewers.inc({ kind: 'listen' })
    open.add(closeListen)
    reply.raw.once('close', () => end('viewer_left'))
    const started = await dashboard.listen(viewer, call, track, {
      audio (pcm) {
        if (state.phase !== 'streaming') return
        if (reply.raw.writableLength > maxUnsent) {
          dropped++
          metrics.dashboardDropped.inc({ kind: 'listen_frame' })
          return
        }
        bytes += pcm.length
        reply.raw.write(pcm)
      },
      end
    })
    if (!started.listening || state.phase === 'ended') {
      if (started.listening) started.stop()
      else end('viewer_left')
      const reason: string = started.listening ? state.endedEarly ?? 'call_ended' : started.reason
      metrics.dashboardRefused.inc({ reason })
      request.log.warn({ viewer: viewer.who, call, track, reason }, 'listen-in refused')
      const message = reason === 'no_track' ? `the call has no ${track} track` : reason === 'shutdown' ? 'the gateway is shutting down' : 'no such live call'
      return reply.code(reason === 'shutdown' ? 503 : 404).send({ statusCode: reason === 'shutdown' ? 503 : 404, error: reason === 'shutdown' ? 'Service Unavailable' : 'Not Found', message })
    }
    stop = started.stop
    maxUnsent = (started.sampleRate * 2 * LISTEN_MAX_UNSENT_MS) / 1000
    state.phase = 'streaming'
    streamTo(request, reply, {
      'content-type': 'application/octet-stream',
      'x-sample-rate': String(started.sampleRate),
      'x-encoding': 'pcm_s16le',
      'x-track': track
    })
    request.log.info({ viewer: viewer.who, call, track, interaction_id: started.interactionId, tenant_id: started.tenantId, sample_rate: started.sampleRate }, 'listen-in started')
  })

  /** Refuses a feed or listen-in past DASHBOARD_MAX_VIEWERS with 503. */
  function full (request: FastifyRequest, reply: FastifyReply, kind: string): boolean {
    if (open.size < config.DASHBOARD_MAX_VIEWERS) return false
    metrics.dashboardRefused.inc({ reason: 'max_viewers' })
    request.log.warn({ kind, max_viewers: config.DASHBOARD_MAX_VIEWERS }, 'dashboard refused: DASHBOARD_MAX_VIEWERS open')
    reply.code(503).header('retry-after', 5).send({ statusCode: 503, error: 'Service Unavailable', message: 'too many dashboard viewers' })
    return true
  }
}

function viewerOf (request: FastifyRequest): Viewer {
  // authenticateViewer admits no request without one.
  return request.viewer as Viewer
}

/** Takes the response over for a stream: headers now, body as it comes, never cut for being quiet. */
function streamTo (request: FastifyRequest, reply: FastifyReply, headers: Record<string, string>): FastifyReply['raw'] {
  reply.hijack()
  request.raw.socket.setTimeout(0)
  reply.raw.writeHead(200, { ...headers, 'cache-control': 'no-store', 'x-accel-buffering': 'no' })
  // The client learns at once that it is admitted, before the first update or frame.
  reply.raw.flushHeaders()
  return reply.raw
}

/**
 * The page: one file, no build step. Its inline script and style are allowed by their hashes alone, nothing loads
 * from elsewhere, and no referrer leaves it, since a JWT may be in its URL.
 */
function readPage (): { html: string, headers: Record<string, string> } {
  const html = readFileSync(findPublic('dashboard.html'), 'utf8')
  const hashes = (tag: string): string => [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))]
    .map(([, body]) => `'sha256-${createHash('sha256').update(body).digest('base64')}'`).join(' ')
  return {
    html,
    headers: {
      // The page's inline style is allowed by its hash; the bars' widths are set through the CSSOM, which CSP allows.
      'content-security-policy': `default-src 'none'; script-src ${hashes('script')}; style-src ${hashes('style')}; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
      'referrer-policy': 'no-referrer',
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-store'
    }
  }
}

/** public/ at the package's root, from routes/ when run as TypeScript and from dist/routes/ when built. */
function findPublic (file: string): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    const path = join(dir, 'public', file)
    if (existsSync(path)) return path
  }
  throw new Error(`public/${file} not found above ${fileURLToPath(import.meta.url)}`)
}

export default dashboardRoutes
