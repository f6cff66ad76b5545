import { parseMessage } from './json-messages.js'
import { CloseCode, ProtocolError } from './protocol-error.js'
import type { StreamContext, VendorAdapter } from './vendor-adapter.js'

/** A vendor that may be on the other end of a connection, with what its upgrade established. */
export interface Candidate {
  adapter: VendorAdapter
  context: StreamContext
}

export type Verdict = { vendor: Candidate } | { wait: true } | { stop: true }

/** How many undecided messages (connected, unknown events) to hold before giving up on detection. */
const MAX_UNDECIDED = 4

/**
 * Tells the vendor of a shared-endpoint connection from its first messages, which must be JSON objects, before
 * any audio is published. Each vendor judges a message by its own fields; the detector settles between them:
 * vendors that said "no" drop out, the first message that exactly one vendor claims decides, and a message two
 * vendors claim is refused.
 */
export class VendorDetector {
  #candidates: Candidate[]
  #undecided = 0

  constructor (candidates: Candidate[]) {
    this.#candidates = candidates
  }

  /** The vendor, when the upgrade alone already decides it (one candidate left). */
  get decided (): Candidate | null {
    return this.#candidates.length === 1 ? this.#candidates[0] : null
  }

  offer (data: Buffer, isBinary: boolean): Verdict {
    if (isBinary) throw new ProtocolError(CloseCode.POLICY_VIOLATION, 'cannot tell the vendor from a binary frame')
    const message = parseMessage(data.toString())
    const event = typeof message.event === 'string' ? message.event : null
    const verdicts = this.#candidates.map((candidate) => ({ candidate, detection: candidate.adapter.detect(message) }))
    const yes = verdicts.filter(({ detection }) => detection === 'yes')
    if (yes.length > 1) throw this.#unknown(`the first messages fit more than one vendor (${yes.map(({ candidate }) => candidate.adapter.name).join(', ')})`)
    if (yes.length === 1) return { vendor: yes[0].candidate }
    this.#candidates = verdicts.filter(({ detection }) => detection === 'maybe').map(({ candidate }) => candidate)
    if (this.#candidates.length === 0) throw this.#unknown(`no enabled vendor sends a ${event === null ? '' : `"${event}" `}message like this one`)
    if (this.#candidates.length === 1) return { vendor: this.#candidates[0] }
    if (event === 'stop') return { stop: true }
    if (++this.#undecided > MAX_UNDECIDED) throw this.#unknown(`cannot tell the vendor from the first ${MAX_UNDECIDED} messages`)
    return { wait: true }
  }

  #unknown (why: string): ProtocolError {
    return new ProtocolError(CloseCode.POLICY_VIOLATION, why)
  }
}
