import type { Static, TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { decodeMulaw } from '../../audio/mulaw.js'
import type { AuthMethod } from '../../auth/auth-method.js'
import type { InboundEvent, StreamStart, Track } from '../inbound-event.js'
import { parseMessage } from '../json-messages.js'
import { CloseCode, ProtocolError } from '../protocol-error.js'
import type { DecodedMessage, Detection, OutboundEncoder, StreamDecoder, VendorAdapter } from '../vendor-adapter.js'
import { audioHookMessages, type MediaParameter } from './audiohook-messages.js'

/** AudioHook streams at 8 kHz only (https://developer.genesys.cloud/devapps/audiohook/protocol-reference#media). */
export const AUDIOHOOK_SAMPLE_RATE = 8000

/** What each channel is: `external` the customer's side, `internal` the agent's. */
const CHANNEL_TRACKS: Readonly<Record<string, Track>> = { external: 'inbound', internal: 'outbound' }

/** Bytes of one sample of one channel, per format. */
const SAMPLE_BYTES: Readonly<Record<string, number>> = { PCMU: 1, L16: 2 }

/** Answers a session id the client never gave (an `open` that could not be read). */
const NULL_UUID = '00000000-0000-0000-0000-000000000000'

type Media = Static<typeof MediaParameter>

/** The media the gateway takes from an offer: PCMU or L16 at 8 kHz, stereo before mono, in the client's order. */
export function chooseMedia (offered: readonly Media[]): Media | null {
  const usable = offered.filter((media) => media.type === 'audio' && Object.hasOwn(SAMPLE_BYTES, media.format) && media.rate === AUDIOHOOK_SAMPLE_RATE &&
    media.channels.length > 0 && media.channels.length <= 2 && media.channels.every((channel) => Object.hasOwn(CHANNEL_TRACKS, channel)) &&
    new Set(media.channels).size === media.channels.length)
  return usable.find((media) => media.channels.length === 2) ?? usable[0] ?? null
}

/** `PT1.5S` in milliseconds (the schema has checked the form). */
export function durationMs (duration: string): number {
  return Math.round(Number(duration.slice(2, -1)) * 1000)
}

/**
 * One connection's protocol state: the session id, the last client `seq` seen (the `clientseq` of server messages)
 * and the server's own count, which every server message, replies and the call's encoder alike, takes the next of.
 */
interface Session {
  id: string | null
  clientSeq: number
  serverSeq: number
  /** The highest `serverseq` the client has reported; it may not go back. */
  acknowledged: number
}

function serverMessage (session: Session, type: string, parameters: Record<string, unknown>): string {
  session.serverSeq += 1
  return JSON.stringify({ version: '2', type, seq: session.serverSeq, clientseq: session.clientSeq, id: session.id ?? NULL_UUID, parameters })
}

export interface AudioHookAdapterOptions {
  /** The method that admits Genesys (X-API-KEY and the signature); the adapter exists only with it. */
  keyMethod: AuthMethod
}

/**
 * Genesys Cloud AudioHook Monitor (https://developer.genesys.cloud/devapps/audiohook/): the client opens a session
 * with `open`, the server answers `opened` naming the media it takes, then audio comes as binary frames of
 * interleaved 8 kHz PCMU or L16, the customer (`external`) and the agent (`internal`) in one frame; `ping`, `paused`,
 * `resumed`, `discarded`, `update`, `error` and `close` are text. AudioHook plays no audio; the server may send
 * `event` messages (a worker's `event` command) and `disconnect`.
 */
export function createAudioHookAdapter ({ keyMethod }: AudioHookAdapterOptions): VendorAdapter {
  return {
    name: 'audiohook',
    // Only Genesys's credential admits it, so on /v1/ingest a request with X-API-KEY is AudioHook's alone.
    auth: [keyMethod.name],
    authMethods: [keyMethod],
    accept: ({ principal }) => ({ principal }),
    detect: detectAudioHook,
    createDecoder: () => createAudioHookDecoder(),
    // Every call's encoder comes from its decoder's `outbound`, to number its messages with the decoder's replies.
    outbound: audioHookOutbound({ id: null, clientSeq: 0, serverSeq: 0, acknowledged: 0 })
  }
}

/** AudioHook's messages carry `version` "2" and a `type`, never an `event`. */
function detectAudioHook (message: Record<string, unknown>): Detection {
  if (message.version !== '2' || typeof message.type !== 'string') return 'no'
  return message.type === 'open' && 'organizationId' in (typeof message.parameters === 'object' && message.parameters !== null ? message.parameters : {}) ? 'yes' : 'maybe'
}

/**
 * No audio, no marks, no clear: AudioHook is a monitor. What goes back is `event`, `pause` and `resume` (a worker's
 * pause asks Genesys to stop sending; it answers `paused`, and `resumed` after `resume`) and, before a close,
 * `disconnect`.
 */
function audioHookOutbound (session: Session): OutboundEncoder {
  return {
    sampleRate: AUDIOHOOK_SAMPLE_RATE,
    chunks: { ms: 100, multipleOf: 2, minBytes: 2, maxBytes: 64_000 },
    // The worker's event object is the message's parameters, e.g. {"entities":[{"type":"transcript","data":{…}}]}.
    event: (_streamId, payload) => serverMessage(session, 'event', payload),
    pause: () => serverMessage(session, 'pause', {}),
    resume: () => serverMessage(session, 'resume', {}),
    // A worker's hang-up and the gateway's shutdown complete the session; anything else ends it for an error.
    disconnect: (_streamId, reason) => serverMessage(session, 'disconnect', {
      reason: reason === 'hangup' || reason === 'shutdown' ? 'completed' : 'error',
      info: reason
    })
  }
}

type Messages = typeof audioHookMessages

const checkers = new Map<string, TypeCheck<TSchema>>(Object.entries(audioHookMessages).map(([type, schema]) => [type, TypeCompiler.Compile(schema)]))

function checkShape (type: string, message: Record<string, unknown>): void {
  const checker = checkers.get(type) as TypeCheck<TSchema>
  if (checker.Check(message)) return
  const error = checker.Errors(message).First()
  const where = error === undefined || error.path === '' ? '' : ` at ${error.path}`
  throw new ProtocolError(CloseCode.INVALID_PAYLOAD, `invalid ${type} message${where}: ${error?.message ?? 'does not match the schema'}`)
}

function policy (message: string): ProtocolError {
  return new ProtocolError(CloseCode.POLICY_VIOLATION, message)
}

/** One connection's decoder: it numbers, checks the client's numbering, and de-interleaves the audio. */
function createAudioHookDecoder (): StreamDecoder {
  const session: Session = { id: null, clientSeq: 0, serverSeq: 0, acknowledged: 0 }
  let media: { format: string, tracks: Track[] } | null = null
  /** Where the next frame starts on the stream's time line: the open's position, samples since, audio discarded. */
  let positionMs = 0
  let samples = 0
  /** The media `opened` names. */
  let chosenMedia: Media | null = null

  /** The client's numbering, as the protocol has it: seq 1, 2, 3…; serverseq never ahead of the server, never back. */
  function checkSequence (message: Record<string, unknown>): void {
    const { seq, serverseq, id } = message
    if (typeof seq === 'number' && seq !== session.clientSeq + 1) {
      throw policy(`seq ${seq} after ${session.clientSeq}: AudioHook numbers the client's messages 1, 2, 3…`)
    }
    if (typeof serverseq === 'number' && (serverseq > session.serverSeq || serverseq < session.acknowledged)) {
      throw policy(`serverseq ${serverseq}: the server's last message was ${session.serverSeq}, and the client had acknowledged ${session.acknowledged}`)
    }
    if (typeof id === 'string' && session.id !== null && id !== session.id) throw policy('id is not the session\'s: one connection carries one session')
  }

  const events: { readonly [T in keyof Messages]: (message: Static<Messages[T]>) => DecodedMessage } = {
    open (message) {
      if (media !== null) throw policy('second open in one session')
      const { parameters } = message
      const chosen = chooseMedia(parameters.media)
      if (chosen === null) {
        throw new ProtocolError(CloseCode.UNSUPPORTED_DATA, 'no offered media the gateway takes: PCMU or L16 at 8000 Hz, channels external and/or internal')
      }
      const tracks = chosen.channels.map((channel) => CHANNEL_TRACKS[channel])
      media = { format: chosen.format, tracks }
      positionMs = durationMs(message.position)
      chosenMedia = chosen
      const start: StreamStart = {
        callId: parameters.conversationId,
        accountId: parameters.organizationId,
        streamId: message.id,
        sampleRate: AUDIOHOOK_SAMPLE_RATE,
        declaredSampleRate: null,
        from: parameters.participant?.ani ?? null,
        to: parameters.participant?.dnis ?? null,
        customParameters: definedOnly({ participant: parameters.participant, language: parameters.language, customConfig: parameters.customConfig }),
        // The customer's side alone is the default one-track call.
        ...(tracks.length === 1 && tracks[0] === 'inbound' ? {} : { tracks })
      }
      return { event: { kind: 'start', start } }
    },
    ping: () => ({ event: { kind: 'unknown', event: 'ping' }, reply: serverMessage(session, 'pong', {}) }),
    update: () => ({ event: { kind: 'unknown', event: 'update' } }),
    paused: () => ({ event: { kind: 'pause' } }),
    resumed ({ parameters }) {
      positionMs += durationMs(parameters.discarded)
      return { event: { kind: 'resume' } }
    },
    discarded ({ parameters }) {
      positionMs += durationMs(parameters.discarded)
      return { event: { kind: 'unknown', event: 'discarded' } }
    },
    error: ({ parameters }) => ({ event: { kind: 'vendor-error', code: String(parameters.code), title: null, detail: parameters.message } }),
    close: ({ parameters }) => ({ event: { kind: 'stop', reason: parameters.reason }, reply: serverMessage(session, 'closed', {}) })
  }

  function decodeText (data: Buffer): DecodedMessage {
    const message = parseMessage(data.toString())
    const { type } = message
    if (typeof type !== 'string') throw new ProtocolError(CloseCode.INVALID_PAYLOAD, 'message has no string "type" field')
    checkSequence(message)
    if (!Object.hasOwn(events, type)) {
      session.clientSeq = typeof message.seq === 'number' ? message.seq : session.clientSeq
      return { event: { kind: 'unknown', event: type } }
    }
    checkShape(type, message)
    const checked = message as { seq: number, serverseq: number, id: string }
    session.clientSeq = checked.seq
    session.acknowledged = checked.serverseq
    session.id ??= checked.id
    return events[type as keyof Messages](message as never)
  }

  /** One binary frame: interleaved samples of every channel, split into one media event per track. */
  function decodeAudio (data: Buffer): DecodedMessage {
    if (media === null) throw policy('audio before open')
    const width = SAMPLE_BYTES[media.format]
    const stride = width * media.tracks.length
    if (data.length % stride !== 0) {
      throw new ProtocolError(CloseCode.INVALID_PAYLOAD,
        `audio frame of ${data.length} bytes is not a whole number of ${media.tracks.length === 2 ? 'stereo ' : ''}${media.format} samples (${stride} bytes each)`)
    }
    const count = data.length / stride
    const timestampMs = Math.floor(positionMs + (samples * 1000) / AUDIOHOOK_SAMPLE_RATE)
    samples += count
    const [first, ...rest] = media.tracks.map((track, channel): InboundEvent => {
      // Byte by byte rather than a copy() call per sample: this runs for every sample of every frame.
      const picked = Buffer.allocUnsafe(count * width)
      for (let i = 0, from = channel * width; i < picked.length; i += width, from += stride) {
        picked[i] = data[from]
        if (width === 2) picked[i + 1] = data[from + 1]
      }
      // L16 comes little-endian, as Genesys's reference implementation reads and writes it (a host-order Int16Array).
      const pcm = media?.format === 'PCMU' ? decodeMulaw(picked) : picked
      return { kind: 'media', pcm, vendorSeq: null, timestampMs, chunk: null, track }
    })
    return { event: first, also: rest }
  }

  return {
    decode: (data, isBinary) => (isBinary ? decodeAudio(data) : decodeText(data)),
    // `opened` once call.start is out: it names the one media the gateway takes, and the stream is not paused.
    started: () => serverMessage(session, 'opened', { media: chosenMedia === null ? [] : [chosenMedia], startPaused: false }),
    // The server tells the client why it goes: a disconnect for an error, with the reason.
    rejected: (error) => serverMessage(session, 'disconnect', { reason: 'error', info: error.message }),
    outbound: () => audioHookOutbound(session)
  }
}

function definedOnly (fields: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined))
}
