import { createWriteStream, mkdirSync, renameSync, rmSync, writeFileSync, type WriteStream } from 'node:fs'
import { open, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import type { CallEvent, CallStartEvent } from '../bus/call-events.js'
import type { Track } from '../track.js'
import { loadSettings } from '../config.js'
import { decodeAudioFrame } from '../bus/audio-frame.js'
import { audioChannel, audioChannelPattern, callsChannel } from '../bus/channels.js'
import { wavHeader, WAV_HEADER_BYTES } from '../audio/wav.js'
import { UsageError, integerOption, parseOptions, runCli } from './cli.js'

const USAGE = `Usage: rtaa-record [options]

Records every call the gateway publishes: recordings/<tenant_id>/<interaction_id>.wav (_ for a call without a
tenant), plus a .json sidecar with the call's events, frame count, sequence gaps and duration. A call with two
tracks gets <interaction_id>.outbound.wav (and .json) besides, for the agent's leg. REDIS_URL and
REDIS_PREFIX come from the environment, .env.local or .env, as for the gateway. It records pub/sub on one Redis:
with REDIS_TRANSPORT=streams or REDIS_CLUSTER_NODES set it refuses to start (exit 2). Once
subscribed it prints "ready: …" on stderr. Exit status 0, 2 for bad arguments, 78 for a bad REDIS_URL or REDIS_PREFIX.

  --out <dir>          where recordings go (default recordings)
  --calls <n>          exit after n calls have ended (default: run until interrupted)
  --redis-url <url>    instead of REDIS_URL
  --prefix <prefix>    instead of REDIS_PREFIX
  --ready-file <path>  create this file once subscribed (removed at start and on exit), for scripts to wait on
  --help`

/** One track of one call, as it is written. */
interface Recording {
  start: CallStartEvent
  /** The track, in a call with two; null for a call's one track. */
  track: Track | null
  channel: string
  wav: WriteStream
  path: string
  events: CallEvent[]
  frames: number
  bytes: number
  /** seq values the recorder never saw: frames lost between the gateway and here. */
  missing: number
  lastSeq: number
}

async function main (argv: string[]): Promise<number> {
  const args = parseOptions(argv, {
    out: { type: 'string' },
    calls: { type: 'string' },
    'redis-url': { type: 'string' },
    prefix: { type: 'string' },
    'ready-file': { type: 'string' },
    help: { type: 'boolean' }
  })
  if (args.help === true) {
    process.stdout.write(`${USAGE}\n`)
    return 0
  }
  const wanted = integerOption(args.calls, 'calls', Infinity, 1)
  const out = args.out ?? 'recordings'
  // Only the settings it uses, so a bad PORT or TLS file meant for the gateway does not stop it.
  const config = loadSettings(['REDIS_URL', 'REDIS_PREFIX', 'REDIS_TRANSPORT', 'REDIS_CLUSTER_NODES'])
  // It listens with PSUBSCRIBE on one Redis: in another mode it would wait forever and record nothing.
  if (config.REDIS_TRANSPORT !== 'pubsub' || config.REDIS_CLUSTER_NODES !== undefined) {
    throw new UsageError(`records pub/sub on one Redis only, not ${config.REDIS_CLUSTER_NODES !== undefined ? 'a Redis Cluster' : 'REDIS_TRANSPORT=streams'}; ` +
      'read the streams directly (docs/redis-contract.md, "Streams mode")', { usage: false })
  }
  const readyFile = args['ready-file']
  if (readyFile !== undefined) prepareReadyFile(readyFile)
  const prefix = args.prefix ?? config.REDIS_PREFIX
  try {
    mkdirSync(out, { recursive: true })
  } catch (err) {
    throw new UsageError(`--out ${out}: ${(err as Error).message}`, { usage: false })
  }

  // By audio channel, and by call (its first channel) for its events.
  const recordings = new Map<string, Recording>()
  const calls = new Map<string, Recording[]>()
  let ended = 0
  const redis = new Redis(args['redis-url'] ?? config.REDIS_URL)
  // ioredis retries on its own; say what is wrong once per cause instead of its unhandled-error stack traces.
  let lastError = ''
  redis.on('error', (err: Error) => {
    if (err.message === lastError) return
    lastError = err.message
    process.stderr.write(`rtaa-record: redis: ${err.message} (retrying)\n`)
  })
  const done = new Promise<void>((resolve) => {
    // One connection, in publish order: call.start always comes before the call's first frame.
    redis.on('pmessageBuffer', (_pattern: Buffer, channelBytes: Buffer, message: Buffer) => {
      const channel = channelBytes.toString()
      if (channel !== callsChannel(prefix)) {
        const { header, pcm } = decodeAudioFrame(message)
        const recording = recordings.get(channel)
        if (recording === undefined) return
        recording.missing += Math.max(0, header.seq - recording.lastSeq - 1)
        recording.lastSeq = Math.max(recording.lastSeq, header.seq)
        recording.frames++
        recording.bytes += pcm.length
        recording.wav.write(pcm)
        return
      }
      const event = JSON.parse(message.toString()) as CallEvent
      // A call is its tenant and its id: two tenants' calls with one id are two recordings, on two audio channels.
      const call = audioChannel(prefix, { tenantId: event.tenant_id, tenantVerified: event.tenant_verified, interactionId: event.interaction_id })
      if (event.type === 'call.start') {
        const dir = join(out, event.tenant_id ?? '_')
        mkdirSync(dir, { recursive: true })
        // A gateway before tracks names no channel per track: the call's one channel is its only track.
        const tracks = Object.entries(event.audio_by_track ?? { inbound: call }) as Array<[Track, string]>
        calls.set(call, tracks.map(([track, channel]) => {
          const two = tracks.length > 1
          const path = join(dir, `${event.interaction_id}${two && track !== 'inbound' ? `.${track}` : ''}.wav`)
          const wav = createWriteStream(path)
          wav.write(wavHeader(event.sample_rate, 0))
          const recording: Recording = { start: event, track: two ? track : null, channel, wav, path, events: [event], frames: 0, bytes: 0, missing: 0, lastSeq: 0 }
          recordings.set(channel, recording)
          process.stderr.write(`recording ${channel} (${event.vendor}, ${event.sample_rate} Hz)\n`)
          return recording
        }))
        return
      }
      const ofCall = calls.get(call)
      if (ofCall === undefined) return
      for (const recording of ofCall) recording.events.push(event)
      if (event.type !== 'call.stop') return
      calls.delete(call)
      for (const { channel } of ofCall) recordings.delete(channel)
      Promise.all(ofCall.map(async (recording) => {
        await finish(recording, event)
        process.stderr.write(`saved ${recording.path}: ${recording.frames} frames, ${recording.bytes} bytes\n`)
      })).then(() => {
        if (++ended >= wanted) resolve()
      }, (err: Error) => process.stderr.write(`cannot save ${ofCall[0].path}: ${err.message}\n`))
    })
  })
  // Resolved once Redis has answered the subscription: a call published after this is recorded.
  await redis.psubscribe(callsChannel(prefix), audioChannelPattern(prefix))
  process.stderr.write(`ready: subscribed to ${callsChannel(prefix)} and ${audioChannelPattern(prefix)}; recordings go to ${out}/\n`)
  if (readyFile !== undefined) renameSync(`${readyFile}.tmp`, readyFile)
  await done
  redis.disconnect()
  return 0
}

/**
 * Removes a ready file left by an earlier run, which would say ready before this one is, and writes the new one
 * aside, to be renamed into place once subscribed: a path that cannot be written fails now, and a script never sees
 * the file half written. Both go when the process exits, by the end of its calls or by SIGINT/SIGTERM.
 */
function prepareReadyFile (path: string): void {
  const remove = (): void => {
    rmSync(path, { force: true })
    rmSync(`${path}.tmp`, { force: true })
  }
  try {
    remove()
    writeFileSync(`${path}.tmp`, `${process.pid}\n`)
  } catch (err) {
    throw new UsageError(`--ready-file ${path}: ${(err as Error).message}`, { usage: false })
  }
  process.once('exit', remove)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => process.exit(signal === 'SIGINT' ? 130 : 143))
  }
}

/** Closes the WAV, patches its sizes now that they are known, and writes the sidecar. */
async function finish (recording: Recording, stop: CallEvent & { type: 'call.stop' }): Promise<void> {
  await new Promise<void>((resolve, reject) => recording.wav.end((err?: Error | null) => (err == null ? resolve() : reject(err))))
  const file = await open(recording.path, 'r+')
  await file.write(wavHeader(recording.start.sample_rate, recording.bytes), 0, WAV_HEADER_BYTES, 0)
  await file.close()
  const sidecar = {
    interaction_id: recording.start.interaction_id,
    vendor: recording.start.vendor,
    tenant_id: recording.start.tenant_id,
    sample_rate: recording.start.sample_rate,
    ...(recording.track === null ? {} : { track: recording.track }),
    frames: recording.frames,
    bytes: recording.bytes,
    duration_ms: Math.round((recording.bytes / (recording.start.sample_rate * 2)) * 1000),
    gaps: recording.missing + ((recording.track === null ? stop.frames : stop.tracks[recording.track]?.frames ?? 0) - recording.lastSeq),
    reason: stop.reason,
    events: recording.events
  }
  await writeFile(recording.path.replace(/\.wav$/, '.json'), `${JSON.stringify(sidecar, null, 2)}\n`)
}

await runCli('rtaa-record', USAGE, main)
