import type { Track } from '../track.js'

/** A message the simulator sends: JSON text, or a binary frame. */
export type SimulatedMessage = Record<string, unknown> | Buffer

/** The vendor's side of a stream, as rtaa-sim plays it. */
export interface VendorSimulator {
  /** The rates the vendor streams at; `defaultSampleRate` is one of them. */
  readonly sampleRates: readonly number[]
  readonly defaultSampleRate: number
  /** The cadence of media messages when --chunk-ms is not given. */
  readonly chunkMs: number
  /**
   * The rate a gateway URL names for this vendor's stream, as the gateway reads it: null when it names none, or
   * why the gateway would refuse it. rtaa-sim streams at that rate, so audio and URL cannot disagree.
   */
  urlSampleRate? (url: URL): { rate: number } | { error: string } | null
  /** The URL to connect to, from the one given: adds what the vendor puts there (a sample rate, the tracks). */
  url? (url: string, sampleRate: number, tracks: readonly Track[]): string
  /** For a vendor that signs its upgrade with a secret (Twilio): how rtaa-sim takes the secret, and signs. */
  readonly signing?: UpgradeSigning
  /** Whether the vendor can send both legs of a call, each frame labelled with its track (`rtaa-sim --tracks both`). */
  readonly bothTracks?: boolean
  /**
   * One call's messages, numbered as the vendor numbers them; `accountId` is the account its start names, `tracks`
   * the legs it streams (`['inbound']` unless the vendor has `bothTracks`), `upgrade` the headers its upgrade carries
   * (AudioHook's open repeats the session and organization it signed).
   */
  call (callId: string, sampleRate: number, accountId: string, tracks: readonly Track[], upgrade?: Readonly<Record<string, string>>): SimulatedCall
}

export interface UpgradeSigning {
  /** rtaa-sim's option for the secret, e.g. `twilio-auth-token`. */
  readonly option: string
  /** The gateway setting holding the same secret: the option's default, read as the gateway reads it. */
  readonly setting: string
  /** The headers that sign an upgrade to `url`, the URL as connected to; made anew for every call (a nonce each). */
  headers (url: string, secret: string): Record<string, string>
}

export interface SimulatedCall {
  /** What the vendor sends before the first audio. */
  readonly opening: SimulatedMessage[]
  /**
   * One media message of one track; `chunk` counts that track's media messages from 1. Null: nothing to send yet
   * (AudioHook sends the chunks of both tracks in one stereo frame, with the second).
   */
  media (chunk: number, timestampMs: number, pcm: Buffer, track: Track): SimulatedMessage | null
  /** A key press, for vendors that report them. */
  dtmf? (digit: string): SimulatedMessage
  /** The vendor's stop; null for a vendor that sends none and ends the call by closing the socket (Vonage). */
  stop (): SimulatedMessage | null
  /**
   * A message from the gateway, taken as a two-way vendor would: the audio it plays (PCM s16le at
   * `playbackRate`), and what it answers (a mark's echo).
   */
  hear? (message: Record<string, unknown> | Buffer): { pcm?: Buffer, reply?: SimulatedMessage }
  readonly playbackRate?: number
}

/** `message[outer][inner]` when it is a string: a payload or a mark's name in a message from the gateway. */
function nestedString (message: Record<string, unknown>, outer: string, inner: string): string | undefined {
  const object = message[outer]
  if (typeof object !== 'object' || object === null) return undefined
  const value = (object as Record<string, unknown>)[inner]
  return typeof value === 'string' ? value : undefined
}

/**
 * How a vendor whose playback messages carry base64 audio in `media.payload` and marks in `mark.name` (Exotel,
 * Twilio) takes them: the audio, decoded; a mark echoed at once, where the vendor waits until the audio before it
 * has played.
 */
export function hearMediaAndMarks (message: Record<string, unknown> | Buffer, decode: (payload: Buffer) => Buffer,
  echo: (name: string) => SimulatedMessage): { pcm?: Buffer, reply?: SimulatedMessage } {
  if (Buffer.isBuffer(message)) return {}
  const payload = message.event === 'media' ? nestedString(message, 'media', 'payload') : undefined
  if (payload !== undefined) return { pcm: decode(Buffer.from(payload, 'base64')) }
  const name = message.event === 'mark' ? nestedString(message, 'mark', 'name') : undefined
  if (name !== undefined) return { reply: echo(name) }
  return {}
}
