import { Type } from '@sinclair/typebox'
import t from 'tap'
import { vendorPlugin } from '../plugins/ingest.js'
import { CloseCode, ProtocolError } from '../src/vendors/protocol-error.js'
import type { VendorAdapter } from '../src/vendors/vendor-adapter.js'
import { TestRedis } from './helpers/redis-server.js'
import { startListenedGateway } from './helpers/gateway.js'
import { ProviderClient, exotelStrings, pcmFrame } from './helpers/exotel.js'

/*
 * A vendor defined here, outside src/, and plugged in through vendorPlugin alone: if a call goes through it on
 * its own route and by detection on /v1/ingest, a new vendor needs no edit to the core.
 */
const Hello = Type.Object({ type: Type.Literal('hello'), call: Type.String(), khz: Type.Number() })
const Bye = Type.Object({ type: Type.Literal('bye') })

const toyAdapter: VendorAdapter = {
  name: 'toy',
  auth: ['ip'],
  messages: { hello: Hello, bye: Bye },
  accept: ({ principal }) => ({ principal }),
  detect: (message) => ('type' in message ? 'yes' : 'no'),
  createDecoder () {
    return {
      decode (data, isBinary) {
        if (isBinary) return { event: { kind: 'media', pcm: data, vendorSeq: null, timestampMs: null } }
        const message = JSON.parse(data.toString()) as { type: string, call: string, khz: number }
        if (message.type === 'bye') return { event: { kind: 'stop', reason: 'bye' } }
        if (message.type !== 'hello') throw new ProtocolError(CloseCode.INVALID_PAYLOAD, 'toys say hello or bye')
        return {
          event: {
            kind: 'start',
            start: { callId: message.call, tenantId: 'toybox', streamId: null, sampleRate: message.khz * 1000, declaredSampleRate: null, from: null, to: null, customParameters: {} }
          }
        }
      },
      started: (call) => `hi ${call.interactionId}`
    }
  }
}

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

for (const path of ['/v1/ingest/toy', '/v1/ingest']) {
  t.test(`a vendor from outside the core serves a call through ${path}`, async (t) => {
    const { gateway, subscriber } = await startListenedGateway(t, redis.url, {}, async (app) => {
      await app.register(vendorPlugin, { adapter: toyAdapter })
    })
    const call = `toy${path.length}`
    const client = await ProviderClient.connect(`${gateway.wsUrl}${path}`)
    client.send({ type: 'hello', call, khz: 16 })
    t.equal(await client.received.waitFor(() => true), `hi ${call}`)
    client.ws.send(pcmFrame(640, 1), { binary: true })
    client.send({ type: 'bye' })
    t.equal((await client.closed).code, 1000)
    t.match(await subscriber.waitForEvent('call.stop', call), { vendor: 'toy', tenant_id: 'toybox', reason: 'bye', frames: 1, bytes: 640 })
    t.match(subscriber.events(call)[0], { vendor: 'toy', sample_rate: 16000 })
    t.ok(subscriber.frames(call)[0].pcm.equals(pcmFrame(640, 1)))
  })
}

t.test('with the toy plugged in, Exotel is still told apart on /v1/ingest', async (t) => {
  const { gateway, subscriber } = await startListenedGateway(t, redis.url, {}, async (app) => {
    await app.register(vendorPlugin, { adapter: toyAdapter })
  })
  const client = await ProviderClient.connect(`${gateway.wsUrl}/v1/ingest`)
  client.send(exotelStrings.connected())
  client.send(exotelStrings.start('CAnottoy'))
  client.send(exotelStrings.stop('CAnottoy', 'MZCAnottoy', 2))
  t.equal((await client.closed).code, 1000)
  t.match(await subscriber.waitForEvent('call.stop', 'CAnottoy'), { vendor: 'exotel' })
})
