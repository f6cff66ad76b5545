import type { Call } from './call.js'

/** The live calls of this process, by interaction_id. */
export class CallRegistry {
  readonly #calls = new Map<string, Call>()

  get size (): number {
    return this.#calls.size
  }

  get (interactionId: string): Call | undefined {
    return this.#calls.get(interactionId)
  }

  /** Returns false, and adds nothing, when a call with the same interaction_id is already live here. */
  add (call: Call): boolean {
    if (this.#calls.has(call.info.interactionId)) return false
    this.#calls.set(call.info.interactionId, call)
    return true
  }

  delete (call: Call): void {
    if (this.#calls.get(call.info.interactionId) === call) this.#calls.delete(call.info.interactionId)
  }

  values (): IterableIterator<Call> {
    return this.#calls.values()
  }
}
