import type { TSchema } from '@sinclair/typebox'
import type { Principal } from '../auth/principal.js'
import type { CallInfo } from '../calls/call.js'
import type { InboundEvent } from './inbound-event.js'
import type { ProtocolError } from './protocol-error.js'

/**
 * A telephony vendor, as the core sees it. One module per vendor implements this; the core serves it on
 * `/v1/ingest/<name>` and, through detection, on the shared `/v1/ingest`. See docs/adding-a-vendor.md.
 */
export interface VendorAdapter {
  /** Lower-case name: the route segment, the `vendor` field on Redis, the SUPPORT_<NAME> flag. */
  readonly name: string
  /** Auth methods that admit a connection for this vendor ('ip', 'basic', 'jwt', or one the vendor brings). */
  readonly auth: readonly string[]
  /** Auth methods this vendor brings, such as a request signature; built-in ones need not be listed. */
  readonly authMethods?: readonly AuthMethod[]
  /** The TypeBox schemas of the vendor's inbound messages, by event name. */
  readonly messages: Readonly<Record<string, TSchema>>
  /**
   * Checks the upgrade request before the socket opens. Returns what the stream needs to know from it, or
   * `{ error }`, which refuses the upgrade with 400 and that message.
   */
  accept (upgrade: UpgradeRequest): StreamContext | { error: string }
  /** Whether a first message (a parsed JSON object) comes from this vendor. */
  detect (message: Record<string, unknown>): Detection
  /** A decoder for one connection. */
  createDecoder (context: StreamContext): StreamDecoder
  /** Wire messages for two-way vendors: what the gateway sends to play audio and control playback. */
  readonly outbound?: OutboundEncoder
}

export type Detection = 'yes' | 'maybe' | 'no'

export interface UpgradeRequest {
  query: Readonly<Record<string, string | undefined>>
  principal: Principal
}

/** What a connection's upgrade established, handed to its decoder. */
export interface StreamContext {
  principal: Principal
  /** The sample rate the URL asked for, when the vendor takes it from there. */
  sampleRate?: number
}

export interface DecodedMessage {
  event: InboundEvent
  /** Field paths the message carries that its schema does not name; only when asked for (debug). */
  unknownFields?: string[]
}

/** Turns one connection's WebSocket messages into normalized events. It may keep state across messages. */
export interface StreamDecoder {
  /** Throws ProtocolError for a message the gateway refuses. */
  decode (data: Buffer, isBinary: boolean, withUnknownFields: boolean): DecodedMessage
  /** A text message to send the client once its call has started (the native protocol acknowledges). */
  started? (call: CallInfo): string | undefined
  /** A text message to send the client before the connection is closed for an error. */
  rejected? (error: ProtocolError): string | undefined
}

/** Encodes outbound playback for a two-way vendor. */
export interface OutboundEncoder {
  /** The rate the vendor plays; null means the call's own rate. */
  readonly sampleRate: number | null
  /** How PCM s16le is cut into media messages, in bytes of PCM at `sampleRate`. */
  readonly chunks: OutboundChunks
  /** One media message; `pcm` is s16le mono at `sampleRate`, cut by the chunk rules. */
  media (streamId: string | null, pcm: Buffer): string
  mark (streamId: string | null, name: string): string
  clear (streamId: string | null): string
}

export interface OutboundChunks {
  /** The audio one message carries while more is queued. */
  ms: number
  /** Every message's PCM is a multiple of this; the last one of an utterance is zero-padded up to it. */
  multipleOf: number
  /** No message carries less: the last one of an utterance is zero-padded up to it. */
  minBytes: number
  maxBytes: number
}

/** An authentication method, decided on the upgrade request alone. */
export interface AuthMethod {
  readonly name: string
  /** Whether the request carries this method's credential; the first method that applies decides. */
  applies (request: AuthRequest): boolean
  /** The principal, or the reason for refusing (logged, never with the credential). */
  verify (request: AuthRequest): Promise<Principal | AuthFailure>
}

export interface AuthRequest {
  headers: Readonly<Record<string, string | string[] | undefined>>
  query: Readonly<Record<string, string | undefined>>
  /** Client address, after TRUST_PROXY. */
  ip: string
  /** The URL the client asked for, as a vendor would have signed it: scheme, host, path and query. */
  url: string
}

export interface AuthFailure {
  status: 401 | 403
  /** A short token for the log line and metrics. */
  reason: string
  /** What the client is told. */
  message: string
  /** More for the log line; never the credential. */
  detail?: string
}
