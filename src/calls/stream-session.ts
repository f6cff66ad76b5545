import type { Log } from '../logger.js'
import type { Publisher } from '../publisher/publisher.js'
import type { InboundEvent, StreamStart } from '../vendors/inbound-event.js'
import { CloseCode, ProtocolError } from '../vendors/protocol-error.js'
import { Call, type CallTransport } from './call.js'
import type { CallRegistry } from './call-registry.js'

export interface StreamSessionOptions {
  vendor: string
  /** The rate negotiated at the upgrade; it beats whatever the start message says. */
  sampleRate: number
  publisher: Publisher
  registry: CallRegistry
  transport: CallTransport
  /** The connection's logger (it carries the request id). */
  log: Log
}

/** Close reasons are limited to 123 bytes by RFC 6455. */
const MAX_CLOSE_REASON = 123

/**
 * One vendor connection, vendor-neutral: it enforces the order connected? → start → media|dtmf|mark* → stop,
 * creates the Call on start and ends it exactly once, however the connection ends.
 */
export class StreamSession {
  #state: 'awaiting-start' | 'live' | 'ended' = 'awaiting-start'
  #call: Call | null = null
  readonly #options: StreamSessionOptions
  #log: Log

  constructor (options: StreamSessionOptions) {
    this.#options = options
    this.#log = options.log.child({ vendor: options.vendor })
  }

  get call (): Call | null {
    return this.#call
  }

  /** The connection's logger; once the call has started it names the call. */
  get log (): Log {
    return this.#log
  }

  /** Applies one decoded message; throws ProtocolError when it breaks the order. */
  handle (event: InboundEvent): void {
    if (this.#state === 'ended') {
      this.#log.debug({ event: event.kind }, 'message after the stream ended, ignored')
      return
    }
    switch (event.kind) {
      case 'media':
        this.#live('media').audio(event.pcm, event.vendorSeq, event.timestampMs)
        return
      case 'start':
        this.#start(event.start)
        return
      case 'dtmf':
        this.#live('dtmf').dtmf(event.digit, event.durationMs)
        return
      case 'mark':
        this.#live('mark').mark(event.name)
        return
      case 'stop':
        this.#stop(event.reason)
        return
      case 'connected':
        if (this.#state !== 'awaiting-start') this.#log.debug('connected after start, ignored')
        return
      case 'unknown':
        this.#log.debug({ event: event.event }, 'unknown event, ignored')
    }
  }

  /** Closes the connection for a message the gateway refuses, with a log line naming the call and the reason. */
  reject (err: ProtocolError): void {
    const reason = truncate(err.message)
    this.#log.warn({ close_code: err.closeCode, reason }, 'closing connection: bad input')
    this.#end('protocol_error')
    this.#options.transport.close(err.closeCode, reason)
  }

  /** The socket has closed, whoever closed it. */
  closed (code: number): void {
    if (this.#state === 'awaiting-start') this.#log.info({ close_code: code }, 'connection closed before start')
    this.#end('disconnected')
  }

  #live (what: string): Call {
    if (this.#call === null) throw new ProtocolError(CloseCode.POLICY_VIOLATION, `${what} before start`)
    return this.#call
  }

  #start (start: StreamStart): void {
    if (this.#state !== 'awaiting-start') throw new ProtocolError(CloseCode.POLICY_VIOLATION, 'second start on one stream')
    const { vendor, sampleRate, publisher, registry, transport } = this.#options
    if (start.declaredSampleRate !== null && start.declaredSampleRate !== sampleRate) {
      this.#log.warn({ url_sample_rate: sampleRate, start_sample_rate: start.declaredSampleRate, interaction_id: start.callId },
        'start names another sample rate than the URL; using the URL\'s')
    }
    const call = new Call({
      interactionId: start.callId,
      tenantId: start.tenantId,
      vendor,
      streamId: start.streamId,
      sampleRate,
      from: start.from,
      to: start.to,
      customParameters: start.customParameters
    }, publisher, transport, this.#options.log)
    if (!registry.add(call)) {
      throw new ProtocolError(CloseCode.POLICY_VIOLATION, `call ${start.callId} is already streaming to this gateway`)
    }
    this.#call = call
    this.#state = 'live'
    this.#log = call.log
    call.start()
  }

  #stop (reason: string | null): void {
    if (this.#state === 'awaiting-start') this.#log.info('stop before start')
    this.#end(reason ?? 'stopped')
    this.#options.transport.close(CloseCode.NORMAL, 'stream stopped')
  }

  #end (reason: string): void {
    if (this.#state === 'ended') return
    this.#state = 'ended'
    if (this.#call === null) return
    this.#call.end(reason)
    this.#options.registry.delete(this.#call)
  }
}

function truncate (reason: string): string {
  if (Buffer.byteLength(reason) <= MAX_CLOSE_REASON) return reason
  let cut = reason.slice(0, MAX_CLOSE_REASON - 3)
  while (Buffer.byteLength(cut) > MAX_CLOSE_REASON - 3) cut = cut.slice(0, -1)
  return `${cut}...`
}
