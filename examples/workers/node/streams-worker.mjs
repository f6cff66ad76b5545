// node streams-worker.mjs [group] [consumer]: reads every call's audio from a gateway in Streams mode
// (REDIS_TRANSPORT=streams; docs/redis-contract.md, "Streams mode"), in a consumer group, and prints one line per
// frame and per call end. Workers of one group share the calls; one restarted under the same consumer name goes on
// where it stopped. Env: REDIS_URL, REDIS_PREFIX, WORKER_GROUP, WORKER_CONSUMER, EVENTS_FROM ($: calls that start
// from now on, the default; 0: every call the events stream still holds).
import { hostname } from 'node:os'
import { Redis } from 'ioredis'

const group = process.argv[2] ?? process.env.WORKER_GROUP ?? 'asr'
const consumer = process.argv[3] ?? process.env.WORKER_CONSUMER ?? hostname()
const events = `${process.env.REDIS_PREFIX ?? 'rtaa:'}calls`
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
const calls = new Map() // audio stream key -> { start: the call.start event, startId: its entry id on the events stream }

// Creates a consumer group on a stream; false when it exists already (BUSYGROUP), and then it keeps its place.
async function createGroup (key, from) {
  try {
    await redis.xgroup('CREATE', key, group, from, 'MKSTREAM')
    return true
  } catch (err) {
    if (err.message.startsWith('BUSYGROUP')) return false
    throw err
  }
}

// Reads one stream's entries this consumer was given earlier and never acknowledged (it died, or was killed).
async function readPending (key) {
  for (let after = '0'; ;) {
    const [[, entries]] = await redis.xreadgroupBuffer('GROUP', group, consumer, 'COUNT', 100, 'STREAMS', key, after)
    if (entries.length === 0) return
    for (const [id, fields] of entries) await handle(key, id.toString(), fields, true)
    after = entries.at(-1)[0].toString()
  }
}

async function handle (key, id, fieldList, pending) {
  const fields = {}
  for (let i = 0; i < (fieldList?.length ?? 0); i += 2) fields[fieldList[i].toString()] = fieldList[i + 1]
  if (key === events) return await handleEvent(id, JSON.parse(fields.event), pending)

  const { start, startId } = calls.get(key)
  const call = `${start.tenant_id ?? '-'} ${start.interaction_id}`
  if (fields.end !== undefined) {
    console.log(`end ${call} ${fields.end} ${fields.frames} ${fields.frames_lost}`)
    calls.delete(key)
    // The call is done: its last entry and its call.start are acknowledged together.
    await redis.multi().xack(key, group, id).xack(events, group, startId).exec()
    return
  }
  // fields.pcm is raw PCM s16le mono at fields.sample_rate: hand it to the recogniser here. (An entry trimmed away
  // while pending comes back without fields.)
  if (fields.pcm !== undefined) console.log(`frame ${call} ${fields.seq} ${fields.pcm.length}`)
  await redis.xack(key, group, id)
}

async function handleEvent (id, event, pending) {
  const call = `${event.tenant_id ?? '-'} ${event.interaction_id}`
  if (event.type !== 'call.start' || event.audio_stream === null) {
    console.log(`event ${event.type} ${call}`)
    return await redis.xack(events, group, id)
  }
  const key = event.audio_stream
  // A call.start read long after its call ended (EVENTS_FROM=0, or a worker down for long) may have outlived its
  // audio, deleted REDIS_STREAM_TTL_S after the call: MKSTREAM would make an empty stream that never ends.
  if (await redis.exists(key) === 0 && Date.now() - event.ts > 60_000) {
    console.log(`gone ${call}`)
    return await redis.xack(events, group, id)
  }
  // The consumer that creates the call's group, from its first frame, takes the call. One that finds the group made
  // has it already (its own call.start, read again after a restart) or has a repeat of the event (events repeat after
  // a Redis failure): two readers in one group would split the call's frames, so a repeat is skipped.
  if (!await createGroup(key, '0') && !pending) {
    console.log(`repeat ${call}`)
    return await redis.xack(events, group, id)
  }
  // The call.start stays pending until the call's end has been handled: a restart finds the call again there.
  console.log(`start ${call} ${key}`)
  calls.set(key, { start: event, startId: id })
  await readPending(key)
}

await createGroup(events, process.env.EVENTS_FROM ?? '$')
await readPending(events) // calls this consumer had started: reopened, with their unacknowledged frames
console.log(`ready ${group} ${consumer}`)
for (;;) {
  // One blocking read for the events and the audio of every open call; '>' is what no consumer has been given.
  const keys = [events, ...calls.keys()]
  const streams = await redis.xreadgroupBuffer('GROUP', group, consumer, 'COUNT', 100, 'BLOCK', 5000, 'STREAMS', ...keys, ...keys.map(() => '>'))
  for (const [key, entries] of streams ?? []) {
    for (const [id, fields] of entries) await handle(key.toString(), id.toString(), fields, false)
  }
}
