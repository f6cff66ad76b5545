import { Redis } from 'ioredis'
import t from 'tap'
import type { CallStartEvent, CallStopEvent } from '../src/bus/call-events.js'
import { decodeMulaw } from '../src/audio/mulaw.js'
import { decodeAudioFrame } from '../src/bus/audio-frame.js'
import { ProviderClient } from './helpers/exotel.js'
import { startGateway, startListenedGateway, waitReady } from './helpers/gateway.js'
import { toEntry } from './helpers/redis-cluster.js'
import { TestRedis } from './helpers/redis-server.js'
import { G711_ALAW } from './helpers/g711.js'
import { Collected } from './helpers/waiter.js'

/*
 * Both legs of a call as two tracks (docs/redis-contract.md, "Tracks"). Twilio's messages are those of its docs
 * (https://www.twilio.com/docs/voice/media-streams/websocket-messages): with <Stream track="both_tracks">, start lists
 * both tracks and each media message names its track, its chunks counted per track.
 */

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

const twilio = {
  start: (callSid: string, tracks: string[]) => ({
    event: 'start',
    sequenceNumber: '1',
    start: {
      accountSid: 'AC18fbd524d33614fba208030751dffdca',
      streamSid: `MZ${callSid}`,
      callSid,
      tracks,
      mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
      customParameters: {}
    },
    streamSid: `MZ${callSid}`
  }),
  media: (callSid: string, seq: number, track: string, chunk: number, mulaw: Buffer) => ({
    event: 'media',
    sequenceNumber: String(seq),
    media: { track, chunk: String(chunk), timestamp: String((chunk - 1) * 20), payload: mulaw.toString('base64') },
    streamSid: `MZ${callSid}`
  }),
  stop: (callSid: string) => ({ event: 'stop', sequenceNumber: '99', streamSid: `MZ${callSid}`, stop: { accountSid: 'AC18fbd524d33614fba208030751dffdca', callSid } })
}

/** 20 ms of μ-law per frame, distinct per track and frame, so a frame on the wrong track cannot pass. */
const mulaw = (track: 'inbound' | 'outbound', i: number): Buffer => Buffer.from(Array.from({ length: 160 }, (_, j) => (j * 7 + i * 13 + (track === 'inbound' ? 0 : 101)) % 256))

/** A-law bytes as PCM, from the reference table. */
const alawReference = (alaw: Buffer): Buffer => {
  const pcm = Buffer.alloc(alaw.length * 2)
  alaw.forEach((byte, i) => pcm.writeInt16LE(G711_ALAW[byte], i * 2))
  return pcm
}

/** Sends a two-track call's media and stop: inbound chunks 1-5, outbound chunks 1-5 without 3 (a gap on that track only). */
function sendBothTracks (client: ProviderClient, callSid: string): { inbound: Buffer[], outbound: Buffer[] } {
  const sent = { inbound: [] as Buffer[], outbound: [] as Buffer[] }
  let seq = 1
  for (let chunk = 1; chunk <= 5; chunk++) {
    client.send(twilio.media(callSid, ++seq, 'inbound', chunk, mulaw('inbound', chunk)))
    sent.inbound.push(mulaw('inbound', chunk))
    if (chunk === 3) continue
    client.send(twilio.media(callSid, ++seq, 'outbound', chunk, mulaw('outbound', chunk)))
    sent.outbound.push(mulaw('outbound', chunk))
  }
  client.send(twilio.stop(callSid))
  return sent
}

t.test('a two-track Twilio call publishes each leg byte-exact on its own track, and a gap in one track counts there only', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/twilio`)
  client.send(twilio.start('CAlegs', ['inbound', 'outbound']))
  const start = await subscriber.waitForEvent('call.start', 'CAlegs') as CallStartEvent
  t.same(start.tracks, ['inbound', 'outbound'], 'call.start lists both tracks')
  t.same(start.audio_by_track, { inbound: start.audio_channel, outbound: `${start.audio_channel as string}:outbound` }, 'and where each one goes')
  // A worker that wants the caller only subscribes to that track's channel, as call.start names it.
  const callerOnly = new Redis(redis.url)
  t.teardown(() => callerOnly.disconnect())
  const heard = new Collected<Buffer>()
  callerOnly.on('messageBuffer', (_channel: Buffer, message: Buffer) => heard.push(message))
  await callerOnly.subscribe(start.audio_by_track.inbound as string)

  const sent = sendBothTracks(client, 'CAlegs')
  t.equal((await client.closed).code, 1000)
  const stop = await subscriber.waitForEvent('call.stop', 'CAlegs') as CallStopEvent

  for (const track of ['inbound', 'outbound'] as const) {
    const frames = subscriber.frames('CAlegs', track)
    t.ok(Buffer.concat(frames.map(({ pcm }) => pcm)).equals(decodeMulaw(Buffer.concat(sent[track]))), `the ${track} leg, byte for byte`)
    t.same(frames.map(({ header }) => header.seq), sent[track].map((_, i) => i + 1), `${track}: seq counts its own frames`)
    t.ok(frames.every(({ header }) => header.track === track), `${track}: every header names the track`)
  }
  t.same(subscriber.frames('CAlegs', 'outbound').map(({ header }) => header.timestamp_ms), [0, 20, 60, 80], 'the vendor\'s timestamps, gap included')
  t.match(stop, {
    frames: 9,
    gaps: 1,
    tracks: {
      inbound: { frames: 5, bytes: 5 * 320, frames_lost: 0, gaps: 0, duplicates: 0, reordered: 0 },
      outbound: { frames: 4, bytes: 4 * 320, frames_lost: 0, gaps: 1, duplicates: 0, reordered: 0 }
    }
  }, 'call.stop: each track\'s totals, the gap on the outbound track only')
  t.match(gateway.logs.items.find((line) => line.msg === 'call ended' && line.interaction_id === 'CAlegs'),
    { frames: 9, tracks: { outbound: { gaps: 1 } } }, 'the end line gives each track too')

  await heard.waitFor((message) => decodeAudioFrame(message).header.seq === 5, 'the caller\'s fifth frame')
  const callerFrames = heard.items.map(decodeAudioFrame)
  t.equal(callerFrames.length, 5, 'the caller-only worker got the caller\'s five frames')
  t.ok(callerFrames.every(({ header }) => header.track === 'inbound'), 'and no frame of the agent\'s')
})

t.test('a two-track Telnyx call (PCMA, ?track=both_tracks) publishes each leg byte-exact on its own track, a gap counted on its track only', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  // Telnyx's literal messages (https://developers.telnyx.com/docs/voice/programmable-voice/media-streaming): its start
  // names no tracks, so the stream URL does, as Telnyx's stream_track does.
  const streamId = '32DE0DEA-53CB-4B21-89A4-9E1819C043BC'
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/telnyx?track=both_tracks`)
  client.send({ event: 'connected', version: '1.0.0' })
  client.send({
    event: 'start',
    sequence_number: '1',
    start: {
      user_id: '3E6F995F-85F7-4705-9741-53B116D28237',
      call_control_id: 'v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ',
      call_session_id: 'ff55a038-6f5d-11ef-9692-02420aeffb1f',
      from: '+13122010094',
      to: '+13122123456',
      media_format: { encoding: 'PCMA', sample_rate: 8000, channels: 1 }
    },
    stream_id: streamId
  })
  const sent = { inbound: [] as Buffer[], outbound: [] as Buffer[] }
  let seq = 1
  // The inbound track misses its chunk 2; the outbound track is whole.
  for (let chunk = 1; chunk <= 4; chunk++) {
    for (const track of ['inbound', 'outbound'] as const) {
      if (track === 'inbound' && chunk === 2) continue
      const alaw = mulaw(track, chunk)
      client.send({ event: 'media', sequence_number: String(++seq), media: { track, chunk: String(chunk), timestamp: String((chunk - 1) * 20), payload: alaw.toString('base64') }, stream_id: streamId })
      sent[track].push(alaw)
    }
  }
  client.send({ event: 'stop', sequence_number: String(++seq), stop: { user_id: '3E6F995F-85F7-4705-9741-53B116D28237' }, stream_id: streamId })
  t.equal((await client.closed).code, 1000)
  const id = 'ff55a038-6f5d-11ef-9692-02420aeffb1f'
  const start = await subscriber.waitForEvent('call.start', id) as CallStartEvent
  t.same(start.tracks, ['inbound', 'outbound'])
  const stop = await subscriber.waitForEvent('call.stop', id) as CallStopEvent
  for (const track of ['inbound', 'outbound'] as const) {
    const frames = subscriber.frames(id, track)
    t.ok(Buffer.concat(frames.map(({ pcm }) => pcm)).equals(alawReference(Buffer.concat(sent[track]))), `the ${track} leg, byte for byte against the G.711 A-law table`)
    t.same(frames.map(({ header }) => [header.seq, header.track]), sent[track].map((_, i) => [i + 1, track]))
  }
  t.match(stop.tracks, { inbound: { frames: 3, gaps: 1 }, outbound: { frames: 4, gaps: 0 } }, 'the gap is the inbound track\'s only')
  t.match(stop, { frames: 7, gaps: 1 })
})

t.test('a single-track call keeps today\'s shape, and a frame on a track its start did not announce closes it with 1008', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/twilio`)
  client.send(twilio.start('CAone', ['inbound']))
  client.send(twilio.media('CAone', 2, 'inbound', 1, mulaw('inbound', 1)))
  client.send(twilio.media('CAone', 3, 'outbound', 1, mulaw('outbound', 1)))
  t.same(await client.closed, { code: 1008, reason: 'media on track outbound, which the stream\'s start did not announce' })
  const start = await subscriber.waitForEvent('call.start', 'CAone') as CallStartEvent
  t.same(start.tracks, ['inbound'])
  t.same(start.audio_by_track, { inbound: start.audio_channel })
  const stop = await subscriber.waitForEvent('call.stop', 'CAone') as CallStopEvent
  t.match(stop, { reason: 'protocol_error', frames: 1, tracks: { inbound: { frames: 1 } } })
  t.notOk('outbound' in stop.tracks)
  const [frame] = subscriber.frames('CAone')
  t.notOk('track' in frame.header, 'no track in a single-track call\'s header')
  t.match(gateway.logs.items.find((line) => line.msg === 'closing connection: bad input' && line.interaction_id === 'CAone'),
    { close_code: 1008, reason: 'media on track outbound, which the stream\'s start did not announce' })

  // A call whose one track is the agent's: its frames go to the call's channel, as any single track's do.
  const agent = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/twilio`)
  agent.send(twilio.start('CAagent', ['outbound']))
  agent.send(twilio.media('CAagent', 2, 'outbound', 1, mulaw('outbound', 1)))
  agent.send(twilio.stop('CAagent'))
  t.equal((await agent.closed).code, 1000)
  const agentStart = await subscriber.waitForEvent('call.start', 'CAagent') as CallStartEvent
  t.same(agentStart.audio_by_track, { outbound: agentStart.audio_channel })
  await subscriber.waitForEvent('call.stop', 'CAagent')
  t.ok(subscriber.frames('CAagent')[0].pcm.equals(decodeMulaw(mulaw('outbound', 1))))
})

t.test('Streams mode: each track has a stream of its own, with its own ids, track field and end entry', async (t) => {
  const gateway = await startGateway(t, redis.url, { REDIS_TRANSPORT: 'streams' })
  await waitReady(gateway)
  const reader = new Redis(redis.url)
  t.teardown(() => reader.disconnect())
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest/twilio`)
  client.send(twilio.start('CAstreams', ['inbound', 'outbound']))
  const sent = sendBothTracks(client, 'CAstreams')
  t.equal((await client.closed).code, 1000)
  // The events stream says where each track went.
  let start: CallStartEvent | undefined
  let stopped = false
  for (let last = '0'; !stopped;) {
    const reply = await reader.xread('BLOCK', 10_000, 'STREAMS', `${gateway.prefix}calls`, last)
    if (reply === null) throw new Error('no call events within 10 s')
    for (const [id, fields] of reply[0][1]) {
      last = id
      const event = JSON.parse(fields[3]) as CallStartEvent | CallStopEvent
      if (event.interaction_id !== 'CAstreams') continue
      if (event.type === 'call.start') start = event
      if (event.type === 'call.stop') stopped = true
    }
  }
  const byTrack = (start as CallStartEvent).audio_by_track
  t.equal(byTrack.inbound, (start as CallStartEvent).audio_stream)
  t.equal(byTrack.outbound, `${byTrack.inbound as string}:outbound`)
  for (const track of ['inbound', 'outbound'] as const) {
    const entries = (await reader.xrangeBuffer(byTrack[track] as string, '-', '+') as Array<[Buffer, Buffer[]]>).map(toEntry)
    const frames = entries.filter(({ fields }) => 'pcm' in fields)
    t.same(frames.map(({ id }) => id), sent[track].map((_, i) => `0-${i + 1}`), `${track}: ids 0-1… of its own`)
    t.ok(frames.every(({ fields }) => fields.track.toString() === track), `${track}: each entry names its track`)
    t.ok(Buffer.concat(frames.map(({ fields }) => fields.pcm)).equals(decodeMulaw(Buffer.concat(sent[track]))), `${track}: byte for byte`)
    const end = entries.at(-1)?.fields ?? {}
    t.same({ end: end.end?.toString(), frames: end.frames?.toString() }, { end: 'stopped', frames: String(sent[track].length) }, `${track}: its own end entry`)
    t.ok(await reader.pttl(byTrack[track] as string) > 0, `${track}: it expires`)
  }
})

t.test('rtaa-sim --tracks both streams both legs of a Twilio, Plivo and Telnyx call', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url)
  const { execFile } = await import('node:child_process')
  const { promisify } = await import('node:util')
  const run = promisify(execFile)
  for (const vendor of ['twilio', 'plivo', 'telnyx']) {
    const { stdout } = await run(process.execPath, ['bin/rtaa-sim.mjs', '--vendor', vendor, '--tracks', 'both', '--duration', '0.2',
      '--url', `${gateway.wsUrl}/v1/ingest`, '--call-prefix', `CA${vendor}`])
    t.match(JSON.parse(stdout), { completed: 1, frames_sent: 20 }, vendor)
    const start = await subscriber.waitForEvent('call.start', `CA${vendor}-1`) as CallStartEvent
    t.same(start.tracks, ['inbound', 'outbound'], `${vendor}: both tracks`)
    const stop = await subscriber.waitForEvent('call.stop', `CA${vendor}-1`) as CallStopEvent
    t.match(stop.tracks, { inbound: { frames: 10, gaps: 0 }, outbound: { frames: 10, gaps: 0 } }, vendor)
    const [inbound, outbound] = [subscriber.frames(`CA${vendor}-1`), subscriber.frames(`CA${vendor}-1`, 'outbound')]
    t.equal(outbound.length, 10)
    // The agent's leg is its own audio (a 440 Hz tone), not the caller's sweep.
    t.notOk(outbound[0].pcm.equals(inbound[0].pcm), `${vendor}: each leg is its own audio`)
  }

  const refused = await run(process.execPath, ['bin/rtaa-sim.mjs', '--vendor', 'exotel', '--tracks', 'both', '--url', `${gateway.wsUrl}/v1/ingest`]).catch((err: { code: number, stderr: string }) => err)
  t.match(refused, { code: 2, stderr: /--tracks both: exotel sends one track/ })
})
