import type { Test } from 'tap'
import type { DashboardView } from '../../src/dashboard/dashboard-view.js'
import { Collected } from './waiter.js'

export interface Feed {
  status: number
  headers: Headers
  views: Collected<DashboardView>
  /** The body of a refused request. */
  body: string
  close: () => void
}

/** Opens the dashboard's feed as a browser's EventSource would, and keeps each view it sends. */
export async function openFeed (t: Test, url: string, headers: Record<string, string> = {}): Promise<Feed> {
  const abort = new AbortController()
  t.teardown(() => abort.abort())
  const response = await fetch(`${url}/dashboard/feed`, { headers: { accept: 'text/event-stream', ...headers }, signal: abort.signal })
  const views = new Collected<DashboardView>()
  const feed: Feed = { status: response.status, headers: response.headers, views, body: '', close: () => abort.abort() }
  if (!response.ok || response.body === null) {
    feed.body = await response.text()
    return feed
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  ;(async () => {
    let pending = ''
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      pending += value
      let end: number
      while ((end = pending.indexOf('\n\n')) !== -1) {
        const event = pending.slice(0, end)
        pending = pending.slice(end + 2)
        const lines = event.split('\n')
        if (!lines.includes('event: view')) continue
        views.push(JSON.parse(lines.filter((line) => line.startsWith('data: ')).map((line) => line.slice(6)).join('\n')) as DashboardView)
      }
    }
  })().catch(() => {})
  return feed
}

export interface Listening {
  status: number
  headers: Headers
  /** Each chunk of PCM as it arrives. */
  chunks: Collected<Buffer>
  /** Resolves with every byte received once the gateway ends the stream. */
  ended: Promise<Buffer>
  body: string
  close: () => void
}

/** Listens in to one track of a call, as the page's Listen button does. */
export async function listenIn (t: Test, url: string, call: string, track: string, headers: Record<string, string> = {}): Promise<Listening> {
  const abort = new AbortController()
  t.teardown(() => abort.abort())
  const response = await fetch(`${url}/dashboard/listen?call=${encodeURIComponent(call)}&track=${track}`, { headers, signal: abort.signal })
  const chunks = new Collected<Buffer>()
  if (!response.ok || response.body === null) {
    return { status: response.status, headers: response.headers, chunks, ended: Promise.resolve(Buffer.alloc(0)), body: await response.text(), close: () => abort.abort() }
  }
  const reader = response.body.getReader()
  const ended = (async () => {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return Buffer.concat(chunks.items)
      chunks.push(Buffer.from(value))
    }
  })().catch(() => Buffer.concat(chunks.items))
  return { status: response.status, headers: response.headers, chunks, ended, body: '', close: () => abort.abort() }
}

/** A call in a view, by its interaction id. */
export function callIn (view: DashboardView, interactionId: string): DashboardView['calls'][number] | undefined {
  return view.calls.find((call) => call.interaction_id === interactionId)
}
