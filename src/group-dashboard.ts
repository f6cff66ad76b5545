import type { DashboardPart } from './dashboard/dashboard-view.js'
import type { ListenStarted, PrimaryMessage, WorkerMessage } from './group-messages.js'

/** A worker as the relay knows it: how to reach it, and whether it serves. */
export interface RelayMember {
  readonly ready: boolean
  send (message: PrimaryMessage): boolean
}

type DashboardMessage = Extract<WorkerMessage, { type: 'rtaa:look' | 'rtaa:part' | 'rtaa:listen' | 'rtaa:tapped' | 'rtaa:audio' | 'rtaa:listen-end' | 'rtaa:unlisten' }>

/** A worker that has not sent its part of a view within this is left out of it. */
const PART_TIMEOUT_MS = 1500

/**
 * The primary's part of the dashboard with WORKERS > 1 (src/worker-link.ts has the workers'): a worker that serves a
 * view asks every worker for its part, and a listen-in asks every worker to tap the call; the one that holds it
 * sends its audio, which the relay passes to the listening worker. Nothing else of a call goes through the primary.
 */
export class GroupDashboard {
  readonly #members: () => Iterable<RelayMember>
  readonly #looks = new Map<string, { asker: RelayMember, parts: DashboardPart[], waiting: number, timer: NodeJS.Timeout }>()
  readonly #listens = new Map<string, { asker: RelayMember, owner: RelayMember | null, waiting: number, failure: ListenStarted }>()

  constructor (members: () => Iterable<RelayMember>) {
    this.#members = members
  }

  static handles (message: WorkerMessage): message is DashboardMessage {
    return ['rtaa:look', 'rtaa:part', 'rtaa:listen', 'rtaa:tapped', 'rtaa:audio', 'rtaa:listen-end', 'rtaa:unlisten'].includes(message.type)
  }

  received (member: RelayMember, message: DashboardMessage): void {
    switch (message.type) {
      case 'rtaa:look': {
        const asked = this.#ready().filter((each) => each.send({ type: 'rtaa:peek', id: message.id, tenant: message.tenant }))
        const timer = setTimeout(() => this.#answerLook(message.id), PART_TIMEOUT_MS)
        this.#looks.set(message.id, { asker: member, parts: [], waiting: asked.length, timer })
        if (asked.length === 0) this.#answerLook(message.id)
        break
      }
      case 'rtaa:part': {
        const look = this.#looks.get(message.id)
        if (look === undefined) return
        look.parts.push(message.part)
        if (--look.waiting === 0) this.#answerLook(message.id)
        break
      }
      case 'rtaa:listen': {
        const asked = this.#ready().filter((each) => each.send({ type: 'rtaa:tap', id: message.id, tenant: message.tenant, call: message.call, track: message.track }))
        this.#listens.set(message.id, { asker: member, owner: null, waiting: asked.length, failure: { listening: false, reason: 'not_found' } })
        if (asked.length === 0) this.#answerListen(message.id)
        break
      }
      case 'rtaa:tapped': {
        const listen = this.#listens.get(message.id)
        if (listen === undefined) {
          // The listener left, or another worker tapped first (a call is held once): let this tap go.
          if (message.started.listening) member.send({ type: 'rtaa:untap', id: message.id })
          return
        }
        listen.waiting--
        if (message.started.listening && listen.owner === null) {
          listen.owner = member
          listen.asker.send({ type: 'rtaa:listened', id: message.id, started: message.started })
        } else if (message.started.listening) {
          member.send({ type: 'rtaa:untap', id: message.id })
        } else if (message.started.reason === 'no_track') {
          listen.failure = message.started
        }
        if (listen.waiting === 0 && listen.owner === null) this.#answerListen(message.id)
        break
      }
      case 'rtaa:audio':
        this.#listens.get(message.id)?.asker.send(message)
        break
      case 'rtaa:listen-end':
        this.#listens.get(message.id)?.asker.send(message)
        this.#listens.delete(message.id)
        break
      case 'rtaa:unlisten': {
        const listen = this.#listens.get(message.id)
        this.#listens.delete(message.id)
        listen?.owner?.send({ type: 'rtaa:untap', id: message.id })
        break
      }
    }
  }

  /** A worker exited: its listen-ins end, and its taps for others end with its calls. */
  exited (member: RelayMember): void {
    for (const [id, listen] of this.#listens) {
      if (listen.owner === member) {
        listen.asker.send({ type: 'rtaa:listen-end', id, reason: 'call_ended' })
        this.#listens.delete(id)
      } else if (listen.asker === member) {
        listen.owner?.send({ type: 'rtaa:untap', id })
        this.#listens.delete(id)
      }
    }
  }

  #ready (): RelayMember[] {
    return [...this.#members()].filter((member) => member.ready)
  }

  #answerLook (id: string): void {
    const look = this.#looks.get(id)
    if (look === undefined) return
    this.#looks.delete(id)
    clearTimeout(look.timer)
    look.asker.send({ type: 'rtaa:looked', id, parts: look.parts })
  }

  #answerListen (id: string): void {
    const listen = this.#listens.get(id)
    if (listen === undefined) return
    this.#listens.delete(id)
    listen.asker.send({ type: 'rtaa:listened', id, started: listen.failure })
  }
}
