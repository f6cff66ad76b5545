import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import WebSocket, { type ClientOptions } from 'ws'
import { Resampler } from '../audio/resampler.js'
import { isTenantId } from '../auth/tenancy.js'
import { loadSettings, type Config } from '../config.js'
import { readWav, wavChannel, writeWav } from '../audio/wav.js'
import { builtInVendors } from '../vendors/built-in-vendors.js'
import type { Track } from '../track.js'
import type { UpgradeSigning, VendorSimulator } from '../vendors/vendor-simulator.js'
import { UsageError, integerOption, parseOptions, runCli } from './cli.js'

/** The vendors the simulator can play, by name. */
const simulators = new Map(builtInVendors.flatMap(({ name, simulator }) => (simulator === undefined ? [] : [[name, simulator] as const])))
const names = [...simulators.keys()]
const vendorList = `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`
const defaultVendor = names[0]
const rateList = [...simulators].map(([name, { sampleRates, defaultSampleRate }]) =>
  `\n                        ${name}: ${sampleRates.join(', ')} (default ${defaultSampleRate})`).join('')
/** The vendors that can send both legs of a call (--tracks both). */
const bothTrackVendors = [...simulators].flatMap(([name, { bothTracks }]) => (bothTracks === true ? [name] : []))
/** The vendors that sign their upgrades, each with its option for the secret (--twilio-auth-token). */
const signings = [...simulators].flatMap(([name, { signing }]) => (signing === undefined ? [] : [[name, signing] as const]))
const signingUsage = signings.map(([name, { option, setting }]) =>
  `\n  --${option} <secret>\n                        sign the upgrade as ${name} does (default ${setting} from the environment,\n                        .env.local or .env), for a gateway that has it set`).join('')

const USAGE = `Usage: rtaa-sim [options]

Plays a telephony provider: opens calls to the gateway, streams audio in real time in the vendor's message
shapes, and prints a JSON summary.

Exit status: 0 when every call completed (upgraded, sent all its audio and its stop, and the gateway closed with
1000; with --voicebot, a worker's hang-up completes a call too); 1 when any did not (upgrade refused, connection
or certificate failure, closed by the gateway before the stop or with another code, no close within 5 s of the
stop); 2 for bad arguments; 78 for a bad setting read from the environment.

  --url <ws-url>        gateway endpoint (default ws://127.0.0.1:8443/v1/ingest); a sample-rate it names is the
                        call's rate
  --vendor <name>       ${vendorList} (default ${defaultVendor})
  --sample-rate <hz>    the call's rate:${rateList}
  --wav <file>          16-bit PCM WAV to stream (resampled to the call's rate); default: a tone sweep
  --tracks <which>      inbound (default), or both: the caller's leg and the agent's, each frame labelled with
                        its track (${bothTrackVendors.join(', ')}); the agent's leg is the WAV's second channel,
                        or a steady 440 Hz tone
  --duration <s>        seconds of audio per call (default 5; with --wav, the file's length)
  --chunk-ms <ms>       20 or 100 (default: the vendor's usual cadence)
  --account <id>        the account the start names (default ACsimulator): one the credential may stream for
  --basic <key:token>   HTTP Basic credentials
  --token <jwt>         Bearer token (native; see rtaa-token)${signingUsage}
  --ca <file>           PEM certificate(s) to trust for wss:// (a self-signed or private CA's certificate)
  --insecure            wss:// without checking the gateway's certificate (warns on stderr)
  --calls <n>           concurrent calls (default 1), started --ramp-ms apart (default 50)
  --dtmf <digits>       e.g. 1,2,# : sent spread over the call (vendors that report key presses)
  --gap <n>             leave out n media messages halfway through each call, as a lossy network would; the
                        gateway counts them as gaps (vendors that number their chunks: exotel, twilio, plivo)
  --voicebot            answer marks as the vendor would, and save the audio played back to a WAV
  --playback-dir <dir>  where --voicebot saves it (default recordings/playback)
  --call-prefix <id>    interaction ids are <id>-1, <id>-2… (default sim-<time>)
  --help`

interface Options {
  url: string
  tls: Pick<ClientOptions, 'ca' | 'rejectUnauthorized'>
  vendor: string
  simulator: VendorSimulator
  sampleRate: number
  audio: Buffer
  /** The legs the calls stream, and each one's audio. */
  tracks: Array<{ track: Track, audio: Buffer }>
  chunkMs: number
  headers: Record<string, string>
  /** The vendor's signing, applied to each call's upgrade; null when unsigned. */
  signing: { sign: UpgradeSigning, secret: string } | null
  account: string
  calls: number
  rampMs: number
  dtmf: string[]
  /** Media messages left out halfway through each call. */
  gap: number
  voicebot: boolean
  playbackDir: string
  callPrefix: string
}

interface CallResult {
  interaction_id: string
  ok: boolean
  frames_sent: number
  bytes_sent: number
  close_code: number | null
  close_reason?: string
  error?: string
  playback_bytes?: number
  playback_file?: string
}

const stats = { live: 0, frames: 0, errors: 0 }

async function main (argv: string[]): Promise<number> {
  const options = resolveOptions(argv)
  if (options === null) {
    process.stdout.write(`${USAGE}\n`)
    return 0
  }
  const started = Date.now()
  const progress = process.stdout.isTTY ? setInterval(() => process.stdout.write(`\rcalls live ${stats.live} | frames sent ${stats.frames} | errors ${stats.errors}   `), 250) : null
  const results = await Promise.all(Array.from({ length: options.calls }, async (_, index) => {
    await sleep(index * options.rampMs)
    return runCall(options, `${options.callPrefix}-${index + 1}`)
  }))
  if (progress !== null) {
    clearInterval(progress)
    process.stdout.write('\n')
  }
  const failed = results.filter((result) => !result.ok)
  process.stdout.write(`${JSON.stringify({
    vendor: options.vendor,
    url: options.url,
    sample_rate: options.sampleRate,
    calls: results.length,
    completed: results.length - failed.length,
    failed: failed.length,
    frames_sent: results.reduce((sum, result) => sum + result.frames_sent, 0),
    duration_ms: Date.now() - started,
    results
  }, null, 2)}\n`)
  return failed.length === 0 ? 0 : 1
}

function resolveOptions (argv: string[]): Options | null {
  const args = parseOptions(argv, {
    url: { type: 'string' },
    vendor: { type: 'string' },
    'sample-rate': { type: 'string' },
    wav: { type: 'string' },
    tracks: { type: 'string' },
    duration: { type: 'string' },
    'chunk-ms': { type: 'string' },
    account: { type: 'string' },
    basic: { type: 'string' },
    token: { type: 'string' },
    ca: { type: 'string' },
    insecure: { type: 'boolean' },
    ...Object.fromEntries(signings.map(([, { option }]) => [option, { type: 'string' }] as const)),
    calls: { type: 'string' },
    'ramp-ms': { type: 'string' },
    dtmf: { type: 'string' },
    gap: { type: 'string' },
    voicebot: { type: 'boolean' },
    'playback-dir': { type: 'string' },
    'call-prefix': { type: 'string' },
    help: { type: 'boolean' }
  })
  if (args.help === true) return null
  const vendor = args.vendor ?? defaultVendor
  const simulator = simulators.get(vendor)
  if (simulator === undefined) throw new UsageError(`--vendor must be ${vendorList}, not "${vendor}"`)
  const url = args.url ?? 'ws://127.0.0.1:8443/v1/ingest'
  if (!/^wss?:\/\//.test(url) || !URL.canParse(url)) throw new UsageError('--url must be a ws:// or wss:// URL')
  const sampleRate = callRate(simulator, vendor, url, args['sample-rate'])
  const chunkMs = integerOption(args['chunk-ms'], 'chunk-ms', simulator.chunkMs)
  if (chunkMs !== 20 && chunkMs !== 100) throw new UsageError('--chunk-ms must be 20 or 100')
  const headers: Record<string, string> = {}
  if (args.basic !== undefined) {
    if (!args.basic.includes(':')) throw new UsageError('--basic must be key:token')
    headers.authorization = `Basic ${Buffer.from(args.basic).toString('base64')}`
  }
  if (args.token !== undefined) headers.authorization = `Bearer ${args.token}`
  const tracks = args.tracks ?? 'inbound'
  if (tracks !== 'inbound' && tracks !== 'both') throw new UsageError(`--tracks must be inbound or both, not "${tracks}"`)
  if (tracks === 'both' && simulator.bothTracks !== true) throw new UsageError(`--tracks both: ${vendor} sends one track; ${bothTrackVendors.join(', ')} can send both`, { usage: false })
  const callUrl = simulator.url?.(url, sampleRate, tracks === 'both' ? ['inbound', 'outbound'] : ['inbound']) ?? url
  const given = args as Record<string, string | boolean | undefined>
  const unused = signings.find(([name, { option }]) => name !== vendor && given[option] !== undefined)
  if (unused !== undefined) throw new UsageError(`--${unused[1].option} signs ${unused[0]} calls; add --vendor ${unused[0]}`, { usage: false })
  const secret = simulator.signing === undefined ? undefined : signingSecret(simulator.signing, given[simulator.signing.option])
  const signing = simulator.signing === undefined || secret === undefined ? null : { sign: simulator.signing, secret }
  const seconds = args.duration === undefined ? null : Number(args.duration)
  if (seconds !== null && !(seconds > 0)) throw new UsageError('--duration must be a positive number of seconds')
  const audio = loadAudio(args.wav, sampleRate, seconds)
  return {
    url: callUrl,
    tls: tlsOptions(url, args.ca, args.insecure === true),
    vendor,
    simulator,
    sampleRate,
    audio,
    tracks: tracks === 'both'
      ? [{ track: 'inbound', audio }, { track: 'outbound', audio: loadAudio(args.wav, sampleRate, seconds, 1, audio.length) }]
      : [{ track: 'inbound', audio }],
    chunkMs,
    headers,
    signing,
    account: accountOption(args.account),
    calls: integerOption(args.calls, 'calls', 1, 1),
    rampMs: integerOption(args['ramp-ms'], 'ramp-ms', 50, 0),
    dtmf: args.dtmf === undefined ? [] : args.dtmf.split(',').filter((digit) => digit !== ''),
    gap: integerOption(args.gap, 'gap', 0, 0),
    voicebot: args.voicebot === true,
    playbackDir: args['playback-dir'] ?? join('recordings', 'playback'),
    callPrefix: args['call-prefix'] ?? `sim-${Date.now()}`
  }
}

/** The call's rate: the one --url names (Exotel's sample-rate), which --sample-rate may repeat but not contradict. */
function callRate (simulator: VendorSimulator, vendor: string, url: string, option: string | undefined): number {
  const given = option === undefined ? null : integerOption(option, 'sample-rate', 0)
  if (given !== null && !simulator.sampleRates.includes(given)) throw new UsageError(`--sample-rate for ${vendor} must be one of ${simulator.sampleRates.join(', ')}`)
  const named = simulator.urlSampleRate?.(new URL(url)) ?? null
  if (named === null) return given ?? simulator.defaultSampleRate
  if ('error' in named) throw new UsageError(`--url: ${named.error}`, { usage: false })
  if (given !== null && given !== named.rate) {
    throw new UsageError(`--sample-rate ${given} contradicts sample-rate=${named.rate} in --url: the gateway would take the audio as ${named.rate} Hz`, { usage: false })
  }
  return named.rate
}

/** The vendor's signing secret: its option, else the gateway's setting from env and dotenv files (checked as it checks it). */
function signingSecret (signing: UpgradeSigning, option: string | boolean | undefined): string | undefined {
  if (typeof option === 'string') return option
  const setting = signing.setting as keyof Config
  return loadSettings([setting])[setting] as string | undefined
}

function tlsOptions (url: string, ca: string | undefined, insecure: boolean): Options['tls'] {
  if (ca === undefined && !insecure) return {}
  if (!url.startsWith('wss://')) throw new UsageError('--ca and --insecure apply to wss:// URLs only', { usage: false })
  if (ca !== undefined && insecure) throw new UsageError('--ca or --insecure, not both', { usage: false })
  if (insecure) {
    process.stderr.write('rtaa-sim: warning: --insecure: the gateway\'s certificate is not verified; anyone in the path can read the calls\n')
    return { rejectUnauthorized: false }
  }
  try {
    return { ca: readFileSync(ca as string) }
  } catch (err) {
    throw new UsageError(`--ca ${ca}: ${(err as Error).message}`, { usage: false })
  }
}

/** The account the start names; the gateway puts it in Redis names, so it must be an account id. */
function accountOption (value: string | undefined): string {
  if (value === undefined) return 'ACsimulator'
  if (!isTenantId(value)) throw new UsageError(`--account must be letters, digits and . _ @ + -, starting with a letter or digit, not "${value}"`)
  return value
}

/**
 * The call's audio at its rate: the WAV's first channel (resampled), or a 300 → 3000 Hz sweep. The agent's leg
 * (`channel` 1, as long as the caller's) is the WAV's second channel, or a steady 440 Hz tone.
 */
function loadAudio (file: string | undefined, rate: number, seconds: number | null, channel: 0 | 1 = 0, bytes?: number): Buffer {
  if (file !== undefined) {
    let wav
    try {
      wav = readWav(readFileSync(file))
    } catch (err) {
      throw new UsageError(`--wav ${file}: ${(err as Error).message}`)
    }
    if (channel === 1 && wav.channels === 1) return tone(440, rate, (bytes ?? 0) / 2)
    let pcm = wavChannel(wav, channel)
    if (wav.sampleRate !== rate) {
      const resampler = new Resampler(wav.sampleRate, rate)
      pcm = Buffer.concat([resampler.process(pcm), resampler.flush()])
    }
    return seconds === null ? pcm : pcm.subarray(0, Math.round(seconds * rate) * 2)
  }
  const samples = Math.round((seconds ?? 5) * rate)
  return channel === 1 ? tone(440, rate, samples) : tone(300, rate, samples, 3000)
}

/** `samples` of a tone at 8000 of 32767, sweeping from `fromHz` to `toHz`. */
function tone (fromHz: number, rate: number, samples: number, toHz = fromHz): Buffer {
  const pcm = Buffer.alloc(samples * 2)
  let phase = 0
  for (let i = 0; i < samples; i++) {
    phase += (2 * Math.PI * (fromHz + ((toHz - fromHz) * i) / samples)) / rate
    pcm.writeInt16LE(Math.round(8000 * Math.sin(phase)), i * 2)
  }
  return pcm
}

async function runCall (options: Options, id: string): Promise<CallResult> {
  const result: CallResult = { interaction_id: id, ok: false, frames_sent: 0, bytes_sent: 0, close_code: null }
  // Signed for this call: a signature may carry a nonce, which no two upgrades share.
  const headers = { ...options.headers, ...options.signing?.sign.headers(options.url, options.signing.secret) }
  const call = options.simulator.call(id, options.sampleRate, options.account, options.tracks.map(({ track }) => track), headers)
  const ws = new WebSocket(options.url, { headers, perMessageDeflate: false, ...options.tls })
  const playback: Buffer[] = []
  /** False when the socket had already closed: the message was not sent. */
  const send = (message: Record<string, unknown> | Buffer): boolean => {
    if (ws.readyState !== WebSocket.OPEN) return false
    if (Buffer.isBuffer(message)) ws.send(message, { binary: true })
    else ws.send(JSON.stringify(message))
    return true
  }
  const closed = new Promise<number>((resolve) => ws.once('close', (code, reason) => {
    if (reason.length > 0) result.close_reason = reason.toString()
    resolve(code)
  }))
  ws.on('unexpected-response', (_request, response) => {
    // The gateway's answer says why (bad_signature, a sample-rate it refuses…): keep its start.
    let body = ''
    response.on('data', (chunk: Buffer) => { body += chunk.toString() })
    response.on('end', () => {
      result.error = `upgrade refused: HTTP ${response.statusCode ?? '?'}${body === '' ? '' : ` ${body.slice(0, 200)}`}`
      ws.terminate()
    })
  })
  ws.on('error', (err: Error & { code?: string }) => {
    const certificate = err.code !== undefined && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(err.code)
    result.error ??= certificate ? `${err.message} (see --ca, --insecure)` : err.message
  })
  ws.on('message', (data: Buffer, isBinary) => {
    if (!options.voicebot || call.hear === undefined) return
    const heard = call.hear(isBinary ? data : JSON.parse(data.toString()) as Record<string, unknown>)
    if (heard.pcm !== undefined) playback.push(heard.pcm)
    if (heard.reply !== undefined) send(heard.reply)
  })

  const opened = await new Promise<boolean>((resolve) => {
    ws.once('open', () => resolve(true))
    ws.once('close', () => resolve(false))
  })
  if (!opened) {
    stats.errors++
    result.close_code = await closed
    return result
  }
  stats.live++
  for (const message of call.opening) send(message)

  const chunkBytes = (options.sampleRate * 2 * options.chunkMs) / 1000
  const chunks = Math.ceil(options.audio.length / chunkBytes)
  const dtmfAt = new Map(options.dtmf.map((digit, i) => [Math.floor(((i + 1) * chunks) / (options.dtmf.length + 1)), digit]))
  const gapFrom = Math.floor(chunks / 2)
  const start = performance.now()
  for (let k = 0; k < chunks && ws.readyState === WebSocket.OPEN; k++) {
    // An absolute schedule, so timer lateness does not accumulate into drift.
    await sleep(start + k * options.chunkMs - performance.now())
    for (const { track, audio } of options.tracks) {
      if (k >= gapFrom && k < gapFrom + options.gap) continue
      const pcm = audio.subarray(k * chunkBytes, (k + 1) * chunkBytes)
      const message = call.media(k + 1, k * options.chunkMs, pcm, track)
      if (message !== null) send(message)
      result.frames_sent++
      result.bytes_sent += pcm.length
      stats.frames++
    }
    const digit = dtmfAt.get(k)
    if (digit !== undefined && call.dtmf !== undefined) send(call.dtmf(digit))
  }
  if (options.voicebot) await sleep(500) // let the last playback and marks arrive
  const stop = call.stop()
  const stopSent = stop === null ? closeNormally(ws) : send(stop)
  let timedOut = false
  const timeout = setTimeout(() => {
    timedOut = true
    ws.terminate()
  }, 5000)
  result.close_code = await closed
  clearTimeout(timeout)
  stats.live--
  // Completed as sent: the gateway let the whole call through and answered the stop with a normal close. A close
  // before the stop cut the call short, whatever its code, except a worker's hang-up, which ends a voicebot call.
  const hungUp = options.voicebot && result.close_code === 1000 && result.close_reason === 'hangup'
  result.ok = result.error === undefined && result.close_code === 1000 && (stopSent || hungUp)
  if (!result.ok) {
    stats.errors++
    const how = `${result.close_code}${result.close_reason === undefined ? '' : ` ${result.close_reason}`}`
    result.error ??= timedOut
      ? 'the gateway did not close within 5 s of the stop'
      : stopSent
        ? `closed with ${how} after the stop; 1000 was expected`
        : `the gateway closed the call (${how}) after ${result.frames_sent} of ${chunks * options.tracks.length} media messages, before the stop`
  }
  if (options.voicebot) {
    const pcm = Buffer.concat(playback)
    mkdirSync(options.playbackDir, { recursive: true })
    result.playback_bytes = pcm.length
    result.playback_file = join(options.playbackDir, `${id}.wav`)
    writeFileSync(result.playback_file, writeWav(pcm, call.playbackRate ?? options.sampleRate))
  }
  return result
}

/** How a vendor without a stop message ends its call: a normal close, which the gateway answers in kind. */
function closeNormally (ws: WebSocket): boolean {
  if (ws.readyState !== WebSocket.OPEN) return false
  ws.close(1000)
  return true
}

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))
}

await runCli('rtaa-sim', USAGE, main)
