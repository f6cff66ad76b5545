import { debugEnabled, type Log } from '../logger.js'
import type { Metrics } from '../metrics.js'
import { Playback } from '../playback/playback.js'
import type { PlaybackSubscriber } from '../playback/playback-subscriber.js'
import type { Publisher } from '../publisher/publisher.js'
import type { InboundEvent, StreamStart } from '../vendors/inbound-event.js'
import { CloseCode, ProtocolError } from '../vendors/protocol-error.js'
import type { StreamDecoder, VendorAdapter } from '../vendors/vendor-adapter.js'
import { VendorDetector, type Candidate } from '../vendors/vendor-detector.js'
import { Call, type CallTransport } from './call.js'
import type { CallRegistry } from './call-registry.js'

/** How a session talks back to its vendor connection. */
export interface StreamTransport extends CallTransport {
  send (text: string): void
}

export interface StreamSessionOptions {
  /** The vendors this connection may be: one on a vendor's own route, every admitted one on /v1/ingest. */
  candidates: Candidate[]
  publisher: Publisher
  registry: CallRegistry
  transport: StreamTransport
  /** The connection's logger (it carries the request id). */
  log: Log
  metrics: Metrics
  /** Playback for two-way vendors; without it, calls are one-way. */
  playback?: PlaybackService
}

export interface PlaybackService {
  subscriber: PlaybackSubscriber
  leadMs: number
  maxBufferMs: number
}

/** Metric reasons for the close codes a refusal uses. */
const CLOSE_REASONS: Record<number, string> = {
  [CloseCode.PROTOCOL_ERROR]: 'protocol_error',
  [CloseCode.UNSUPPORTED_DATA]: 'unsupported_data',
  [CloseCode.INVALID_PAYLOAD]: 'invalid_payload',
  [CloseCode.POLICY_VIOLATION]: 'policy_violation',
  [CloseCode.MESSAGE_TOO_BIG]: 'too_big',
  [CloseCode.INTERNAL_ERROR]: 'internal_error'
}

/** Close reasons are limited to 123 bytes by RFC 6455. */
const MAX_CLOSE_REASON = 123

/**
 * One vendor connection, vendor-neutral. It settles the vendor (at once, or by detection from the first
 * messages), enforces the order connected? → start → media|dtmf|mark* → stop, creates the Call on start and ends
 * it exactly once, however the connection ends.
 */
export class StreamSession {
  #state: 'awaiting-start' | 'live' | 'ended' = 'awaiting-start'
  #call: Call | null = null
  #decoder: StreamDecoder | null = null
  #adapter: VendorAdapter | null = null
  readonly #detector: VendorDetector
  /** Messages held while detection is undecided, replayed once the vendor is known. */
  #held: Array<[Buffer, boolean]> = []
  readonly #options: StreamSessionOptions
  #log: Log
  /** Read once: a pino level lookup per message is measurable, and the level does not change at runtime. */
  readonly #debug: boolean

  constructor (options: StreamSessionOptions) {
    this.#options = options
    this.#log = options.log
    this.#debug = debugEnabled(options.log)
    this.#detector = new VendorDetector(options.candidates)
    const decided = this.#detector.decided
    if (decided !== null) this.#use(decided)
  }

  /** Decodes and applies one WebSocket message; a refused one closes the connection, never the process. */
  receive (data: Buffer, isBinary: boolean): void {
    if (this.#state === 'ended') {
      this.#log.debug('message after the stream ended, ignored')
      return
    }
    try {
      if (this.#decoder === null) {
        this.#detect(data, isBinary)
        return
      }
      const decoded = this.#decoder.decode(data, isBinary, this.#debug)
      if (decoded.unknownFields !== undefined && decoded.unknownFields.length > 0) {
        this.#log.debug({ fields: decoded.unknownFields }, 'unknown fields, ignored')
      }
      this.#handle(decoded.event)
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.reject(err)
        return
      }
      this.#log.error({ err }, 'message handling failed')
      this.reject(new ProtocolError(CloseCode.INTERNAL_ERROR, 'internal error'))
    }
  }

  /** Closes the connection for a message the gateway refuses, with a log line naming the call and the reason. */
  reject (err: ProtocolError): void {
    const reason = truncate(err.message)
    const undetected = this.#adapter === null ? { vendor_candidates: this.#options.candidates.map(({ adapter }) => adapter.name) } : {}
    const internal = err.closeCode === CloseCode.INTERNAL_ERROR
    this.#options.metrics.inputErrors.inc({ vendor: this.#adapter?.name ?? 'undetected', reason: CLOSE_REASONS[err.closeCode] ?? 'other' })
    this.#log.warn({ close_code: err.closeCode, reason, ...undetected }, internal ? 'closing connection: internal error' : 'closing connection: bad input')
    this.#end(internal ? 'internal_error' : 'protocol_error')
    const explanation = this.#decoder?.rejected?.(err)
    if (explanation !== undefined) this.#options.transport.send(explanation)
    this.#options.transport.close(err.closeCode, reason)
  }

  /** Ends the connection's call for a reason of the gateway's own (idle, keepalive_timeout); the caller closes the socket. */
  end (reason: string): void {
    this.#log.info({ reason }, 'ending connection')
    this.#end(reason)
  }

  /** The socket has closed, whoever closed it. */
  closed (code: number): void {
    if (this.#state === 'awaiting-start') this.#log.info({ close_code: code }, 'connection closed before start')
    this.#end('disconnected')
  }

  #use ({ adapter, context }: Candidate): void {
    this.#adapter = adapter
    this.#decoder = adapter.createDecoder(context)
    this.#log = this.#options.log.child({ vendor: adapter.name })
  }

  #detect (data: Buffer, isBinary: boolean): void {
    const verdict = this.#detector.offer(data, isBinary)
    if ('stop' in verdict) {
      this.#stop(null)
      return
    }
    this.#held.push([data, isBinary])
    if ('wait' in verdict) return
    this.#use(verdict.vendor)
    const held = this.#held
    this.#held = []
    for (const [message, binary] of held) this.receive(message, binary)
  }

  #handle (event: InboundEvent): void {
    switch (event.kind) {
      case 'media':
        this.#live('media').audio(event.pcm, event.vendorSeq, event.timestampMs, event.chunk ?? null)
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

  #live (what: string): Call {
    if (this.#call === null) throw new ProtocolError(CloseCode.POLICY_VIOLATION, `${what} before start`)
    return this.#call
  }

  #start (start: StreamStart): void {
    if (this.#state !== 'awaiting-start') throw new ProtocolError(CloseCode.POLICY_VIOLATION, 'second start on one stream')
    const { publisher, registry, transport } = this.#options
    if (start.declaredSampleRate !== null && start.declaredSampleRate !== start.sampleRate) {
      this.#log.warn({ sample_rate: start.sampleRate, declared_sample_rate: start.declaredSampleRate, interaction_id: start.callId },
        'the start message names another sample rate than the call uses; using the call\'s')
    }
    const call = new Call({
      interactionId: start.callId,
      tenantId: start.tenantId,
      vendor: this.#adapter?.name ?? 'unknown',
      streamId: start.streamId,
      sampleRate: start.sampleRate,
      from: start.from,
      to: start.to,
      customParameters: start.customParameters
    }, { publisher, transport, log: this.#options.log, metrics: this.#options.metrics })
    if (!registry.add(call)) {
      throw new ProtocolError(CloseCode.POLICY_VIOLATION, `call ${start.callId} is already streaming to this gateway`)
    }
    this.#call = call
    this.#state = 'live'
    this.#log = call.log
    this.#startPlayback(call)
    call.start()
    const acknowledgement = this.#decoder?.started?.(start)
    if (acknowledgement !== undefined) transport.send(acknowledgement)
  }

  /** Subscribes before call.start goes out, so a worker that answers call.start at once is heard. */
  #startPlayback (call: Call): void {
    const encoder = this.#adapter?.outbound
    const service = this.#options.playback
    if (encoder === undefined || service === undefined) return
    const { info } = call
    const playback = new Playback({
      encoder,
      callSampleRate: info.sampleRate,
      streamId: info.streamId,
      send: this.#options.transport.send,
      hangup: () => call.hangup('hangup', CloseCode.NORMAL, 'hangup'),
      markCleared: (name) => call.markCleared(name),
      leadMs: service.leadMs,
      maxBufferMs: service.maxBufferMs,
      metrics: this.#options.metrics,
      vendor: info.vendor,
      log: call.log
    })
    call.playback = playback
    service.subscriber.subscribe(info.interactionId, (message) => playback.receive(message))
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
    if (this.#call.playback !== null) this.#options.playback?.subscriber.unsubscribe(this.#call.info.interactionId)
  }
}

function truncate (reason: string): string {
  if (Buffer.byteLength(reason) <= MAX_CLOSE_REASON) return reason
  let cut = reason.slice(0, MAX_CLOSE_REASON - 3)
  while (Buffer.byteLength(cut) > MAX_CLOSE_REASON - 3) cut = cut.slice(0, -1)
  return `${cut}...`
}
