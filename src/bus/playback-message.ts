import { parseJsonObject } from '../json-object.js'

/** What a worker publishes on `{prefix}playback:{interaction_id}` (docs/redis-contract.md, "Speak into a call"). */
export type PlaybackMessage =
  | { kind: 'audio', sampleRate: number, pcm: Buffer }
  | { kind: 'mark', name: string }
  | { kind: 'clear' }
  | { kind: 'hangup' }
  /** Withhold the call's audio from Redis until `resume` (a payment moment, say): for every vendor. */
  | { kind: 'pause' }
  | { kind: 'resume' }
  /** A message for the vendor itself, which its encoder wraps (AudioHook's `event`). */
  | { kind: 'event', payload: Record<string, unknown> }

export class PlaybackMessageError extends Error {
  override name = 'PlaybackMessageError'
  /** A short token for logs and counters. */
  readonly reason: string

  constructor (reason: string, message: string) {
    super(message)
    this.reason = reason
  }
}

const refuseCommand = (problem: string): Error => new PlaybackMessageError('bad_json', `command ${problem}`)
const refuseHeader = (problem: string): Error => new PlaybackMessageError('bad_json', `audio header ${problem}`)

const OPEN_BRACE = 0x7b
/** The rates a worker may send; each has its resampling filter designed once, so an odd rate cannot stall the process. */
export const PLAYBACK_SAMPLE_RATES = [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000]

/** A control command (`pause`, `resume`) is a small JSON object; the call handles it whatever its vendor. */
const MAX_CONTROL_BYTES = 256

/** `pause` or `resume` when the message is that command, null for anything else (which parsePlaybackMessage judges). */
export function controlCommand (message: Buffer): 'pause' | 'resume' | null {
  if (message[0] !== OPEN_BRACE || message.length > MAX_CONTROL_BYTES) return null
  try {
    const { kind } = parseCommand(message)
    return kind === 'pause' || kind === 'resume' ? kind : null
  } catch {
    return null
  }
}

/**
 * A JSON command starts with `{`; anything else is the audio envelope, which starts with a 4-byte big-endian header
 * length (so its first byte is 0 for any header under 16 MiB): header JSON, then PCM s16le mono.
 */
export function parsePlaybackMessage (message: Buffer): PlaybackMessage {
  return message[0] === OPEN_BRACE ? parseCommand(message) : parseAudio(message)
}

function parseCommand (message: Buffer): PlaybackMessage {
  const command = parseJsonObject(message.toString('utf8'), refuseCommand)
  switch (command.type) {
    case 'clear':
      return { kind: 'clear' }
    case 'hangup':
      return { kind: 'hangup' }
    case 'pause':
      return { kind: 'pause' }
    case 'resume':
      return { kind: 'resume' }
    case 'event':
      if (typeof command.event !== 'object' || command.event === null || Array.isArray(command.event)) {
        throw new PlaybackMessageError('bad_event', 'an event command needs an "event" object')
      }
      return { kind: 'event', payload: command.event as Record<string, unknown> }
    case 'mark':
      if (typeof command.name !== 'string' || command.name === '' || command.name.length > 256) {
        throw new PlaybackMessageError('bad_mark', 'a mark needs a "name" of 1 to 256 characters')
      }
      return { kind: 'mark', name: command.name }
    default:
      throw new PlaybackMessageError('unknown_command', `unknown command type ${JSON.stringify(command.type)}`)
  }
}

function parseAudio (message: Buffer): PlaybackMessage {
  if (message.length < 4) throw new PlaybackMessageError('bad_envelope', 'audio message shorter than its length prefix')
  const headerEnd = 4 + message.readUInt32BE(0)
  if (headerEnd > message.length) throw new PlaybackMessageError('bad_envelope', 'audio header length runs past the message')
  const header = parseJsonObject(message.toString('utf8', 4, headerEnd), refuseHeader)
  const sampleRate = header.sample_rate
  if (typeof sampleRate !== 'number' || !PLAYBACK_SAMPLE_RATES.includes(sampleRate)) {
    throw new PlaybackMessageError('bad_sample_rate', `sample_rate must be one of ${PLAYBACK_SAMPLE_RATES.join(', ')}`)
  }
  if (header.encoding !== undefined && header.encoding !== 'pcm_s16le') throw new PlaybackMessageError('bad_encoding', 'encoding must be pcm_s16le')
  if (header.channels !== undefined && header.channels !== 1) throw new PlaybackMessageError('bad_channels', 'channels must be 1')
  const pcm = message.subarray(headerEnd)
  if (pcm.length % 2 !== 0) throw new PlaybackMessageError('odd_length', `audio holds ${pcm.length} bytes, not a whole number of 16-bit samples`)
  return { kind: 'audio', sampleRate, pcm }
}
