// node cluster-worker.mjs: reads every call's audio from a gateway on a Redis Cluster in pub/sub mode
// (REDIS_CLUSTER_NODES set; docs/redis-contract.md, "Redis Cluster") with sharded pub/sub, and prints one line per
// frame and per call end. Env: REDIS_CLUSTER_NODES (host:port,… of some masters), REDIS_PREFIX.
import { Cluster } from 'ioredis'

const events = `${process.env.REDIS_PREFIX ?? 'rtaa:'}calls`
const seeds = (process.env.REDIS_CLUSTER_NODES ?? '127.0.0.1:7000').split(',').map((node) => {
  const colon = node.lastIndexOf(':')
  return { host: node.slice(0, colon), port: Number(node.slice(colon + 1)) }
})
// One subscriber connection per master; for a password or TLS, add redisOptions: { password, tls: {} }.
const sub = new Cluster(seeds, { shardedSubscribers: true })
const calls = new Map() // a call (its tenant, verified or not, and its id) -> { channel, start, lastSeq, stop, timer }
const channels = new Map() // audio channel -> the same call

// A call is its tenant and its id; a tenant no credential vouches for never meets the verified one (see "Tenancy").
const callOf = (event) => `${event.tenant_verified ? '' : '~'}${event.tenant_id}:${event.interaction_id}`
const name = ({ tenant_id: tenant, interaction_id: id }) => `${tenant ?? '-'} ${id}`

// smessageBuffer hands over the raw bytes; 'smessage' would decode the PCM as UTF-8 and ruin it.
sub.on('smessageBuffer', (channelBytes, message) => {
  const channel = channelBytes.toString()
  if (channel === events) return onEvent(JSON.parse(message.toString('utf8')))
  const call = channels.get(channel)
  if (call === undefined) return
  const headerLength = message.readUInt32BE(0)
  const header = JSON.parse(message.toString('utf8', 4, 4 + headerLength))
  if (header.seq <= call.lastSeq) return // a frame retried after a failover can arrive twice
  call.lastSeq = header.seq
  const pcm = message.subarray(4 + headerLength) // s16le mono; its offset may be odd, so read it with readInt16LE
  console.log(`frame ${name(header)} ${header.seq} ${pcm.length}`)
  if (call.stop !== null && call.lastSeq >= call.stop.frames) finish(call)
})

async function onEvent (event) {
  if (event.type === 'call.start' && event.audio_channel !== null) {
    // No patterns in sharded pub/sub: each call's channel is subscribed once its call.start arrives, on the shard of
    // its slot. Frames published before that are not received: the first seq printed says how many.
    const call = { channel: event.audio_channel, start: event, lastSeq: 0, stop: null, timer: null }
    calls.set(callOf(event), call)
    channels.set(call.channel, call)
    await sub.ssubscribe(call.channel)
    console.log(`start ${name(event)} ${call.channel}`)
  } else if (event.type === 'call.stop') {
    const call = calls.get(callOf(event))
    if (call === undefined || call.stop !== null) return // an event can repeat after a Redis failure
    call.stop = event
    // The events and the call's audio are on different shards, so nothing orders this call.stop after the call's
    // last frame: wait for it (seq = frames), or a moment for frames that will never come (frames_lost).
    if (call.lastSeq >= event.frames) finish(call)
    else call.timer = setTimeout(() => finish(call), 2000)
  } else {
    console.log(`event ${event.type} ${name(event)}`)
  }
}

function finish (call) {
  clearTimeout(call.timer)
  calls.delete(callOf(call.start))
  channels.delete(call.channel)
  sub.sunsubscribe(call.channel)
  const { reason, frames, frames_lost: lost } = call.stop
  console.log(`end ${name(call.start)} ${reason} ${frames} ${lost}`)
}

await sub.ssubscribe(events)
console.log(`ready ${events}`)
