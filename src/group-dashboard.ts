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
  /** Each look and listen-in under way, with the workers whose answer it still waits for. */
  readonly #looks = new Map<string, { asker: RelayMember, parts: DashboardPart[], waiting: Set<RelayMember>, timer: NodeJS.Timeout }>()
  readonly #listens = new Map<string, { asker: RelayMember, owner: RelayMember | null, waiting: Set<RelayMember>, failure: ListenStarted, timer: NodeJS.Timeout | null }>()

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
        this.#looks.set(message.id, { asker: member, parts: [], waiting: new Set(asked), timer })
        if (asked.length === 0) this.#answerLook(message.id)
        break
      }
      case 'rtaa:part': {
        const look = this.#looks.get(message.id)
        if (look === undefined) return
        look.parts.push(message.part)
        look.waiting.delete(member)
        if (look.waiting.size === 0) this.#answerLook(message.id)
        break
      }
      case 'rtaa:listen': {
        const asked = this.#ready().filter((each) => each.send({ type: 'rtaa:tap', id: message.id, tenant: message.tenant, call: message.call, track: message.track }))
        const timer = setTimeout(() => this.#answerListen(message.id), PART_TIMEOUT_MS)
        this.#listens.set(message.id, { asker: member, owner: null, waiting: new Set(asked), failure: { listening: false, reason: 'not_found' }, timer })
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
        listen.waiting.delete(member)
        if (message.started.listening && listen.owner === null) {
          listen.owner = member
          if (listen.timer !== null) clearTimeout(listen.timer)
          listen.timer = null
          listen.asker.send({ type: 'rtaa:listened', id: message.id, started: message.started })
        } else if (message.started.listening) {
          member.send({ type: 'rtaa:untap', id: message.id })
        } else if (message.started.reason === 'no_track') {
          listen.failure = message.started
        }
        if (listen.waiting.size === 0 && listen.owner === null) this.#answerListen(message.id)
        break
      }
      case 'rtaa:audio':
        this.#listens.get(message.id)?.asker.send(message)
        break
      case 'rtaa:listen-end':
        this.#listens.get(message.id)?.asker.send(message)
        this.#forgetListen(message.id)
        break
      case 'rtaa:unlisten': {
        const listen = this.#listens.get(message.id)
        this.#forgetListen(message.id)
        listen?.owner?.send({ type: 'rtaa:untap', id: message.id })
        break
      }
    }
  }

  /** A worker exited: its listen-ins end, its taps for others end with its calls, and no answer is awaited from it. */
  exited (member: RelayMember): void {
    for (const [id, listen] of this.#listens) {
      if (listen.owner === member) {
        listen.asker.send({ type: 'rtaa:listen-end', id, reason: 'call_ended' })
        this.#forgetListen(id)
      } else if (listen.asker === member) {
        listen.owner?.send({ type: 'rtaa:untap', id })
        this.#forgetListen(id)
      } else if (listen.waiting.delete(member) && listen.waiting.size === 0 && listen.owner === null) {
        this.#answerListen(id)
      }
    }
    for (const [id, look] of this.#looks) {
      if (look.asker === member) {
        clearTimeout(look.timer)
        this.#looks.delete(id)
      } else if (look.waiting.delete(member) && look.waiting.size === 0) {
        this.#answerLook(id)
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

  /** No worker tapped the call (in time): the asker hears why; a tap that answers later is let go ('rtaa:tapped'). */
  #answerListen (id: string): void {
    const listen = this.#listens.get(id)
    if (listen === undefined || listen.owner !== null) return
    this.#forgetListen(id)
    listen.asker.send({ type: 'rtaa:listened', id, started: listen.failure })
  }

  #forgetListen (id: string): void {
    const timer = this.#listens.get(id)?.timer
    if (timer != null) clearTimeout(timer)
    this.#listens.delete(id)
  }
}
