import { readFileSync } from 'node:fs'
import { Redis } from 'ioredis'
import t from 'tap'
import { TestRedis } from './helpers/redis-server.js'
import { startGateway, waitReady } from './helpers/gateway.js'
import { ProviderClient, exotelStrings, pcmFrame } from './helpers/exotel.js'
import { Collected } from './helpers/waiter.js'

/*
 * docs/redis-contract.md is what workers in other languages build against. This test reads the field tables out of
 * the document and decodes what the gateway publishes with a decoder written from the document alone (no import
 * from src/), so the document and the code cannot drift apart unnoticed.
 */

const doc = readFileSync(new URL('../docs/redis-contract.md', import.meta.url), 'utf8')

/** The `field` | type rows of the first table after a heading or marker line. */
function fieldTable (marker: string): Map<string, string> {
  const start = doc.indexOf(marker)
  if (start === -1) throw new Error(`docs/redis-contract.md has no "${marker}"`)
  const lines = doc.slice(start + marker.length).split('\n')
  const firstRow = lines.findIndex((line) => line.startsWith('|'))
  const fields = new Map<string, string>()
  for (const line of lines.slice(firstRow)) {
    if (!line.startsWith('|')) break
    const match = /^\| `([a-z_]+)` \| ([^|]+?) \|/.exec(line)
    if (match !== null) fields.set(match[1], match[2])
  }
  return fields
}

/** Whether a value fits a documented type such as "string", "number or null" or "object". */
function fitsType (value: unknown, documented: string): boolean {
  return documented.split(' or ').some((type) => {
    if (type === 'null') return value === null
    if (type === 'object') return typeof value === 'object' && value !== null && !Array.isArray(value)
    return typeof value === type
  })
}

/** The reference decoder, as docs/redis-contract.md "Audio frames" describes the layout. */
function decodeFrame (message: Buffer): { header: Record<string, unknown>, pcm: Buffer } {
  const headerLength = message.readUInt32BE(0)
  return {
    header: JSON.parse(message.toString('utf8', 4, 4 + headerLength)) as Record<string, unknown>,
    pcm: message.subarray(4 + headerLength)
  }
}

const baseFields = fieldTable('### Fields every event carries')
const eventFields = {
  'call.start': fieldTable('### `call.start`'),
  'call.dtmf': fieldTable('### `call.dtmf`'),
  'call.mark': fieldTable('### `call.mark`'),
  'call.stop': fieldTable('### `call.stop`')
}
const headerFields = fieldTable('Header fields:')

t.test('the document names the fields the issue promised', async (t) => {
  t.same([...baseFields.keys()], ['type', 'interaction_id', 'tenant_id', 'vendor', 'stream_id', 'ts'])
  t.same([...headerFields.keys()], ['interaction_id', 'seq', 'vendor_seq', 'timestamp_ms', 'sample_rate', 'encoding', 'channels'])
  t.same([...eventFields['call.stop'].keys()], ['reason', 'frames', 'bytes', 'duration_ms'])
})

t.test("the document's worked example decodes to what the document says", async (t) => {
  const dump = /```\n(00000000:[\s\S]*?)```/.exec(doc)?.[1]
  t.ok(dump, 'a hex dump is in the document')
  const bytes = Buffer.from((dump ?? '').split('\n').map((line) => line.slice(10, 49).replace(/ /g, '')).join(''), 'hex')
  const { header, pcm } = decodeFrame(bytes)
  t.same(header, { interaction_id: 'CA9f3b2a71c4', seq: 1, vendor_seq: 2, timestamp_ms: 100, sample_rate: 8000, encoding: 'pcm_s16le', channels: 1 })
  t.same([0, 2, 4, 6].map((offset) => pcm.readInt16LE(offset)), [0, 1000, -1000, 32767])
})

t.test('what the gateway publishes matches the document field for field', async (t) => {
  const redis = await TestRedis.start()
  t.teardown(() => redis.stop())
  const gateway = await startGateway(t, redis.url, { REDIS_PREFIX: 'rtaa:' })
  await waitReady(gateway)

  const published = new Collected<{ channel: string, message: Buffer }>()
  const subscriber = new Redis(redis.url)
  t.teardown(() => subscriber.disconnect())
  subscriber.on('pmessageBuffer', (_pattern: Buffer, channel: Buffer, message: Buffer) => published.push({ channel: channel.toString(), message }))
  await subscriber.psubscribe('rtaa:*')

  const sampleRate = 16000
  const sent = [pcmFrame(3200, 1), pcmFrame(640, 2), pcmFrame(1600, 3)]
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest?sample-rate=${sampleRate}`)
  client.send(exotelStrings.start('CAcontract', 'MZcontract'))
  client.send(exotelStrings.media('MZcontract', 2, 1, 0, sent[0]))
  client.send({ event: 'media', stream_sid: 'MZcontract', media: { payload: sent[1].toString('base64') } })
  client.send(exotelStrings.dtmf('MZcontract', 4, '#'))
  client.send(exotelStrings.media('MZcontract', 5, 3, 120, sent[2]))
  client.send(exotelStrings.mark('MZcontract', 6, 'turn-1'))
  client.send(exotelStrings.stop('CAcontract', 'MZcontract', 7))
  await client.closed
  await published.waitFor(({ message }) => message.includes('"call.stop"'), 'call.stop')

  const events = published.items.filter(({ channel }) => channel === 'rtaa:calls').map(({ message }) => JSON.parse(message.toString()) as Record<string, unknown>)
  t.same(events.map((event) => event.type), ['call.start', 'call.dtmf', 'call.mark', 'call.stop'])
  for (const event of events) {
    const documented = new Map([...baseFields, ...eventFields[event.type as keyof typeof eventFields]])
    t.same(Object.keys(event).sort(), [...documented.keys()].sort(), `${String(event.type)} has exactly the documented fields`)
    for (const [field, type] of documented) t.ok(fitsType(event[field], type), `${String(event.type)}.${field} is ${type}`)
  }
  t.equal(events[0].audio_channel, 'rtaa:audio:CAcontract', 'call.start names the audio channel as the document spells it')

  const frames = published.items.filter(({ channel }) => channel === events[0].audio_channel).map(({ message }) => decodeFrame(message))
  t.equal(frames.length, sent.length)
  let bytesBefore = 0
  frames.forEach(({ header, pcm }, i) => {
    t.same(Object.keys(header).sort(), [...headerFields.keys()].sort(), `frame ${i + 1} has exactly the documented header fields`)
    for (const [field, type] of headerFields) t.ok(fitsType(header[field], type), `header.${field} is ${type}`)
    t.ok(pcm.equals(sent[i]), `frame ${i + 1} carries the PCM sent`)
    t.equal(header.seq, i + 1)
    t.match(header, { interaction_id: 'CAcontract', sample_rate: sampleRate, encoding: 'pcm_s16le', channels: 1 })
    if (i === 1) {
      // No media.timestamp: "floor(bytes_before / (sample_rate * 2 / 1000))".
      t.equal(header.timestamp_ms, Math.floor(bytesBefore / (sampleRate * 2 / 1000)))
      t.equal(header.vendor_seq, null)
    }
    bytesBefore += pcm.length
  })
  t.match(frames.map(({ header }) => header), [{ vendor_seq: 2, timestamp_ms: 0 }, {}, { vendor_seq: 5, timestamp_ms: 120 }])
  t.match(events[3], { reason: 'callended', frames: 3, bytes: bytesBefore })

  // "call.start is published before the first audio frame … and call.stop after the last frame".
  const order = published.items.map(({ channel, message }) => channel === 'rtaa:calls' ? String(JSON.parse(message.toString()).type) : 'audio')
  t.same(order, ['call.start', 'audio', 'audio', 'call.dtmf', 'audio', 'call.mark', 'call.stop'])
})
