import { Cluster } from 'ioredis'
import t from 'tap'
import { TestRedisCluster } from './helpers/redis-cluster.js'

const cluster = await TestRedisCluster.start()
t.teardown(() => cluster.stop())

t.test('the test cluster: 3 masters with a replica each, call tags spread over the masters', async (t) => {
  const view = await cluster.topology()
  const masters = view.filter((node) => node.role === 'master')
  t.equal(masters.length, 3, 'three masters')
  t.same(masters.map((master) => view.filter((node) => node.masterId === master.id).length), [1, 1, 1], 'one replica each')
  t.equal(masters.reduce((sum, master) => sum + master.slots.reduce((n, [from, to]) => n + to - from + 1, 0), 0), 16384, 'every slot served')
  t.equal(cluster.seeds.split(',').length, 3)

  const ids = await cluster.spreadIds(3)
  const owners = await Promise.all(ids.map((id) => cluster.masterFor(`rtaa:audio:{_:${id}}`)))
  t.same(new Set(owners.map((owner) => owner.port)), new Set(masters.map((master) => master.port)), `${ids.join(', ')}: one on each master`)
  for (const [i, id] of ids.entries()) {
    t.equal((await cluster.masterFor(`rtaa:playback:{_:${id}}`)).slot, owners[i].slot, 'a call\'s names share its slot')
  }
})

t.test('SIGKILL of a key\'s master: its replica takes over and the key is served again', async (t) => {
  const client = new Cluster(cluster.startupNodes)
  t.teardown(() => client.disconnect())
  const key = 'rtaa:call:{_:CAfailover}'
  t.equal(await client.set(key, 'claimed'), 'OK')
  const before = await cluster.masterFor(key)
  const [replica] = await cluster.replicasOf(before.port)
  // The write must be on the replica before its master dies: WAIT on the connection that wrote it.
  const writer = client.nodes('master').find((node) => node.options.port === before.port)
  t.equal(await writer?.wait(1, 5_000), 1, 'replicated')
  t.equal(await client.get(key), 'claimed')

  await cluster.kill(before.port)
  const after = await cluster.waitForFailover(key, before.port)
  t.equal(after.port, replica, 'the replica is the new master')
  t.equal(after.slot, before.slot)
  t.equal(await client.get(key), 'claimed', 'the key survived, served by the new master')
  t.equal(await client.set(key, 'again'), 'OK', 'and writable')
  t.equal((await cluster.masterFor(key)).port, replica)
})
