import type { InboundEvent } from './inbound-event.js'
import { parseMessage } from './json-messages.js'
import { CloseCode, ProtocolError } from './protocol-error.js'
import type { StreamContext, StreamDecoder, VendorAdapter } from './vendor-adapter.js'

/** A vendor that may be on the other end of a connection, with what its upgrade established. */
export interface Candidate {
  adapter: VendorAdapter
  context: StreamContext
}

export type Verdict = { vendor: Candidate } | { wait: true } | { stop: true }

/** How many undecided messages (connected, unknown events) to hold before giving up on detection. */
const MAX_UNDECIDED = 4

/** Events only a started call may receive: every vendor refuses them before its start. */
const AFTER_START: ReadonlySet<InboundEvent['kind']> = new Set(['media', 'dtmf', 'mark'])

/**
 * Tells the vendor of a shared-endpoint connection from its first messages, which must be JSON objects, before
 * any audio is published. Each vendor judges a message by its own fields; the detector settles between them:
 * vendors that said "no" drop out, the first message that exactly one vendor claims decides, and a message two
 * vendors claim is refused. A message that only "maybe" fits a vendor is also put to that vendor's decoder: a vendor
 * that would refuse it (its schema, or an event before start) drops out too, so a stream no vendor can accept is
 * refused at once, with the reason its vendors give.
 */
export class VendorDetector {
  #candidates: Candidate[]
  #undecided = 0
  /** Each candidate's decoder for judging, apart from the one the settled vendor decodes the stream with. */
  readonly #judges = new Map<Candidate, StreamDecoder>()

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
    if (yes.length > 1) throw this.#unknown(`the first messages fit more than one vendor (${this.#names(yes)})`)
    if (yes.length === 1) return { vendor: yes[0].candidate }
    const maybe = verdicts.filter(({ detection }) => detection === 'maybe').map(({ candidate }) => candidate)
    if (maybe.length === 0) throw this.#unknown(`no enabled vendor sends a ${event === null ? '' : `"${event}" `}message like this one`)

    const refusals: Array<{ candidate: Candidate, error: ProtocolError }> = []
    const accepted: Array<{ candidate: Candidate, kind: InboundEvent['kind'] }> = []
    for (const candidate of maybe) {
      const judged = this.#judge(candidate, data)
      if (judged instanceof ProtocolError) refusals.push({ candidate, error: judged })
      else accepted.push({ candidate, kind: judged })
    }
    this.#candidates = accepted.map(({ candidate }) => candidate)
    if (accepted.length === 0) throw refusal(refusals)
    if (accepted.length === 1) return { vendor: accepted[0].candidate }
    if (accepted.some(({ kind }) => kind === 'start')) throw this.#unknown(`the first messages fit more than one vendor (${this.#names(accepted)})`)
    if (accepted.some(({ kind }) => kind === 'stop')) return { stop: true }
    if (++this.#undecided > MAX_UNDECIDED) throw this.#unknown(`cannot tell the vendor from the first ${MAX_UNDECIDED} messages`)
    return { wait: true }
  }

  /** The kind of event the candidate reads in the message, or why it would refuse it as the stream's opening. */
  #judge (candidate: Candidate, data: Buffer): InboundEvent['kind'] | ProtocolError {
    let judge = this.#judges.get(candidate)
    if (judge === undefined) {
      judge = candidate.adapter.createDecoder(candidate.context)
      this.#judges.set(candidate, judge)
    }
    try {
      const { kind } = judge.decode(data, false, false).event
      return AFTER_START.has(kind) ? new ProtocolError(CloseCode.POLICY_VIOLATION, `${kind} before start`) : kind
    } catch (err) {
      if (err instanceof ProtocolError) return err
      throw err
    }
  }

  #names (verdicts: Array<{ candidate: Candidate }>): string {
    return verdicts.map(({ candidate }) => candidate.adapter.name).join(', ')
  }

  #unknown (why: string): ProtocolError {
    return new ProtocolError(CloseCode.POLICY_VIOLATION, why)
  }
}

/**
 * Every remaining candidate refused the message: with their reason when they agree, else with each vendor's (and
 * their close code when they agree on it, else 1008).
 */
function refusal (refusals: Array<{ candidate: Candidate, error: ProtocolError }>): ProtocolError {
  const [first] = refusals
  if (refusals.every(({ error }) => error.message === first.error.message && error.closeCode === first.error.closeCode)) return first.error
  const code = refusals.every(({ error }) => error.closeCode === first.error.closeCode) ? first.error.closeCode : CloseCode.POLICY_VIOLATION
  const reasons = refusals.map(({ candidate, error }) => `${candidate.adapter.name}: ${error.message}`).join('; ')
  return new ProtocolError(code, `no enabled vendor accepts this message (${reasons})`)
}
