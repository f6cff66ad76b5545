import type { AuthMethod, Query } from '../auth/auth-method.js'
import type { Principal } from '../auth/principal.js'
import type { InboundEvent, StreamStart, Track } from './inbound-event.js'
import type { MediaScan } from './media-scanner.js'
import type { ProtocolError } from './protocol-error.js'

/**
 * A telephony vendor, as the core sees it. The core serves it on `/v1/ingest/<name>` and, through detection, on
 * the shared `/v1/ingest`. See docs/adding-a-vendor.md.
 */
export interface VendorAdapter {
  /** Lower-case name: the route segment, the `vendor` field on Redis. */
  readonly name: string
  /** Auth methods that admit a connection for this vendor ('ip', 'basic', 'jwt', or one it brings). */
  readonly auth: readonly string[]
  /** Auth methods this vendor brings, such as a request signature. */
  readonly authMethods?: readonly AuthMethod[]
  /**
   * The accounts a connection admitted by the IP allowlist may stream for (its <NAME>_ACCOUNT_SIDS): the allowlist
   * vouches for no account, so without a list the account the start names is taken as it is.
   */
  readonly ipAccounts?: readonly string[] | null
  /**
   * Checks the upgrade request before the socket opens. Returns what the stream needs to know from it, or
   * `{ error }`, which refuses the upgrade with 400 and that message.
   */
  accept (upgrade: UpgradeRequest): StreamContext | { error: string }
  /** What a first message (a parsed JSON object) says about this vendor, judged by the vendor's own fields only. */
  detect (message: Record<string, unknown>): Detection
  /** A decoder for one connection. */
  createDecoder (context: StreamContext): StreamDecoder
  /** Wire messages for two-way vendors: what the gateway sends to play audio and control playback. */
  readonly outbound?: OutboundEncoder
}

/**
 * - 'yes': the message carries fields that identify this vendor (its ids);
 * - 'maybe': it could be this vendor's;
 * - 'no': it breaks this vendor's own grammar.
 * When two vendors say 'yes', the detector refuses the stream.
 */
export type Detection = 'yes' | 'maybe' | 'no'

export interface UpgradeRequest {
  query: Query
  principal: Principal
}

/** What a connection's upgrade established, handed to its decoder. */
export interface StreamContext {
  principal: Principal
  /** The sample rate the URL asked for, when the vendor takes it from there. */
  sampleRate?: number
  /** The tracks the URL says the vendor will send, for a vendor whose start does not list them (Telnyx). */
  tracks?: readonly Track[]
}

export interface DecodedMessage {
  event: InboundEvent
  /** Further events the same message carries, handled after `event` (AudioHook's stereo frame: one media per track). */
  also?: InboundEvent[]
  /**
   * A text message to send the client at once, once the event is handled (AudioHook's pong); a stop's answer
   * (AudioHook's closed) goes out before the close that ends the call.
   */
  reply?: string
  /** Field paths the message carries that its schema does not name; only when asked for (debug). */
  unknownFields?: string[]
}

/** Turns one connection's WebSocket messages into normalized events. It may keep state across messages. */
export interface StreamDecoder {
  /** Throws ProtocolError for a message the gateway refuses. */
  decode (data: Buffer, isBinary: boolean, withUnknownFields: boolean): DecodedMessage
  /**
   * The frame path's shortcut for media (docs/adding-a-vendor.md, "A fast path for media"): messages read from their
   * bytes, PCM decoded straight into the message Redis gets. Optional; whatever it is not sure of goes to `decode`.
   */
  readonly fast?: MediaFastPath
  /** A text message to send the client once its call has started (the native protocol acknowledges). */
  started? (start: StreamStart): string | undefined
  /** A text message to send the client before the connection is closed for an error. */
  rejected? (error: ProtocolError): string | undefined
  /**
   * The playback encoder of this connection's call, when it depends on what the start said (Plivo plays back in the
   * encoding its start names, Vonage in 20 ms frames at its rate); without it, the adapter's `outbound`.
   */
  outbound? (start: StreamStart): OutboundEncoder
}

/**
 * A vendor's media messages read without parsing them. It must vouch only for what `decode` accepts as media (for a
 * call with one track), with the same counters and the same PCM; test/fast-media.test.ts checks a vendor's against
 * its decoder.
 */
export interface MediaFastPath {
  /** True when `data` is a media message it vouches for (`into` then holds its reading); false leaves it to decode. */
  scan (data: Buffer, into: MediaScan): boolean
  /**
   * Decodes the scanned message's PCM s16le into `target` from its start: the bytes written, or -1 where decode would
   * refuse the message (or `target` is too small); the message then goes to decode, which says why.
   */
  decodePcm (data: Buffer, scan: MediaScan, target: Buffer): number
}

/** Encodes outbound playback for a two-way vendor. */
export interface OutboundEncoder {
  /** The rate the vendor plays; null means the call's own rate. */
  readonly sampleRate: number | null
  /** How PCM s16le is cut into media messages, in bytes of PCM at `sampleRate`. */
  readonly chunks: OutboundChunks
  /**
   * One media message, text or (Vonage) binary; `pcm` is s16le mono at `sampleRate`, cut by the chunk rules. A vendor
   * that plays no audio (AudioHook) leaves out `media`, `mark` and `clear`: workers' audio, marks and clears are then
   * dropped and counted (`not_played`).
   */
  media? (streamId: string | null, pcm: Buffer): string | Buffer
  mark? (streamId: string | null, name: string): string
  clear? (streamId: string | null): string
  /**
   * A worker's `event` command (docs/redis-contract.md, "Speak into a call"): the vendor's message carrying it
   * (AudioHook's `event`, for transcripts or agent assist back into Genesys). Without it, the command is dropped.
   */
  event? (streamId: string | null, payload: Record<string, unknown>): string
  /**
   * A request that the vendor pause or resume its stream, sent when a worker pauses or resumes the call (AudioHook's
   * `pause` and `resume`, which the client answers with `paused` and `resumed`). The gateway withholds the call's audio
   * either way; this only spares the vendor sending it.
   */
  pause? (streamId: string | null): string
  resume? (streamId: string | null): string
  /** The message a vendor expects before the gateway closes its stream (AudioHook's `disconnect`); `reason` is call.stop's. */
  disconnect? (streamId: string | null, reason: string): string
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
