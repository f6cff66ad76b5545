import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Cluster, Redis } from 'ioredis'
import type { Test } from 'tap'
import { freePorts } from './redis-server.js'
import type { Published } from './subscriber.js'
import { Collected } from './waiter.js'

const run = promisify(execFile)

export interface ClusterNode {
  /** The client port, on 127.0.0.1. */
  readonly port: number
  /** The cluster bus port, chosen free on its own (`--cluster-port`) rather than assumed free at port + 10000. */
  readonly busPort: number
  readonly process: ChildProcess
  /** The role `redis-cli --cluster create` gave it; after a failover, topology() says who is master now. */
  readonly role: 'master' | 'replica'
  /** The node id, from CLUSTER MYID. */
  readonly id: string
  /** Killed by kill() or stop(). */
  readonly dead: boolean
}

/** One line of CLUSTER NODES, as one node sees the cluster. */
export interface NodeView {
  id: string
  port: number
  role: 'master' | 'replica'
  /** For a replica, its master's id. */
  masterId: string | null
  /** The node is flagged fail (or pfail: suspected) by the node asked. */
  failing: boolean
  slots: Array<[number, number]>
}

export interface SlotOwner {
  port: number
  id: string
  slot: number
}

interface OwnNode {
  port: number
  busPort: number
  process: ChildProcess
  exited: Promise<unknown>
  role: 'master' | 'replica'
  id: string
  dead: boolean
  admin: Redis
  output: () => string
}

const NODE_COUNT = 6

/**
 * A Redis Cluster of the test's own: 3 masters with one replica each, 6 redis-server processes on free ports and a
 * directory of their own. Failover is quick (--cluster-node-timeout 1000) and any replica may take over
 * (--cluster-replica-validity-factor 0). The processes die with the test process, even when the file times out.
 */
export class TestRedisCluster {
  readonly #dir: string
  readonly #nodes: OwnNode[]
  readonly #orphaned: () => void

  private constructor (dir: string, nodes: OwnNode[]) {
    this.#dir = dir
    this.#nodes = nodes
    // A test file that times out never runs its teardowns: the cluster must not outlive it.
    this.#orphaned = () => {
      for (const node of this.#nodes) node.process.kill('SIGKILL')
      rmSync(this.#dir, { recursive: true, force: true })
    }
    process.once('exit', this.#orphaned)
  }

  static async start (): Promise<TestRedisCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'rtaa-cluster-'))
    const ports = await freePorts(2 * NODE_COUNT)
    const nodes = Array.from({ length: NODE_COUNT }, (_, i) => spawnNode(dir, ports[i], ports[NODE_COUNT + i]))
    const cluster = new TestRedisCluster(dir, nodes)
    try {
      await Promise.all(nodes.map((node) => node.ready))
      const addresses = nodes.map((node) => `127.0.0.1:${node.port}`)
      await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '1', '--cluster-yes'], { timeout: 20_000 })
        .catch((error: Error & { stdout?: string }) => { throw new Error(`redis-cli --cluster create failed: ${error.message}\n${error.stdout ?? ''}`) })
      for (const node of nodes) node.id = String(await node.admin.call('CLUSTER', 'MYID'))
      await cluster.#waitHealthy()
      const view = await cluster.topology()
      for (const node of nodes) node.role = view.find((line) => line.id === node.id)?.role ?? 'replica'
    } catch (error) {
      await cluster.stop()
      throw error
    }
    return cluster
  }

  get nodes (): readonly ClusterNode[] {
    return this.#nodes
  }

  /** `127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`, the first three nodes: what REDIS_CLUSTER_NODES takes. */
  get seeds (): string {
    return this.#nodes.slice(0, 3).map((node) => `127.0.0.1:${node.port}`).join(',')
  }

  /** Every node, for ioredis' `new Cluster(startupNodes)`. */
  get startupNodes (): Array<{ host: string, port: number }> {
    return this.#nodes.map((node) => ({ host: '127.0.0.1', port: node.port }))
  }

  /** CLUSTER NODES as one live node sees it (the first live one unless `port` says which). */
  async topology (port?: number): Promise<NodeView[]> {
    const node = port === undefined ? this.#live()[0] : this.#node(port)
    return parseNodes(String(await node.admin.call('CLUSTER', 'NODES')))
  }

  async slotOf (key: string): Promise<number> {
    return Number(await this.#live()[0].admin.call('CLUSTER', 'KEYSLOT', key))
  }

  /** The master serving a key's slot, as the first live node sees it. */
  async masterFor (key: string): Promise<SlotOwner> {
    const slot = await this.slotOf(key)
    const owner = ownerOf(await this.topology(), slot)
    if (owner === undefined) throw new Error(`no master serves slot ${slot} of ${key}`)
    return { port: owner.port, id: owner.id, slot }
  }

  /** The live replicas of the master on `port`. */
  async replicasOf (port: number): Promise<number[]> {
    const view = await this.topology()
    const master = view.find((line) => line.port === port)
    if (master === undefined) throw new Error(`no node on port ${port}`)
    return view.filter((line) => line.masterId === master.id && !line.failing).map((line) => line.port)
  }

  /**
   * Interaction ids whose call tag `{tenant:id}` lands on each master in turn: `count` ids, as evenly spread over
   * the masters as `count` allows (count 3: one on each).
   */
  async spreadIds (count: number, { tenant = '_', prefix = 'CA' }: { tenant?: string, prefix?: string } = {}): Promise<string[]> {
    const masters = (await this.topology()).filter((line) => line.role === 'master' && line.slots.length > 0)
    const wanted = Array.from({ length: count }, (_, i) => masters[i % masters.length].port)
    const ids: string[] = []
    for (let candidate = 0; ids.length < count; candidate++) {
      if (candidate > 10_000) throw new Error('no spread of ids found')
      const id = `${prefix}${candidate}`
      const { port } = await this.masterFor(`{${tenant}:${id}}`)
      if (port === wanted[ids.length]) ids.push(id)
    }
    return ids
  }

  /** Sends a signal to one node; with SIGKILL (the default) it resolves when the process is gone. */
  async kill (port: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const node = this.#node(port)
    if (signal === 'SIGKILL') {
      node.dead = true
      node.admin.disconnect()
    }
    node.process.kill(signal)
    if (signal === 'SIGKILL') await node.exited
  }

  /** Resolves once `count` connections are SSUBSCRIBEd to `channel` on the master of its slot (PUBSUB SHARDNUMSUB). */
  async waitForShardSubscribers (channel: string, count = 1, timeoutMs = 10_000): Promise<void> {
    await until(`${count} subscriber(s) of ${channel}`, timeoutMs, async () => {
      const { port } = await this.masterFor(channel)
      const [, subscribers] = await this.#node(port).admin.call('PUBSUB', 'SHARDNUMSUB', channel) as [string, number]
      return Number(subscribers) >= count ? true : undefined
    })
  }

  /** Freezes a node (SIGSTOP): it neither answers nor takes part in the cluster until resume(). */
  pause (port: number): void {
    this.#node(port).process.kill('SIGSTOP')
  }

  resume (port: number): void {
    this.#node(port).process.kill('SIGCONT')
  }

  /**
   * Resolves once every live node says cluster_state:ok and agrees that a node other than `oldMasterPort` serves the
   * key's slot, and that node says it is a master; resolves with it.
   */
  async waitForFailover (key: string, oldMasterPort: number, timeoutMs = 15_000): Promise<SlotOwner> {
    const slot = await this.slotOf(key)
    return until(`a new master for slot ${slot} (was on ${oldMasterPort})`, timeoutMs, async () => {
      const owners = new Set<number>()
      for (const node of this.#live()) {
        if (!(await clusterOk(node.admin))) return undefined
        const owner = ownerOf(parseNodes(String(await node.admin.call('CLUSTER', 'NODES'))), slot)
        if (owner === undefined || owner.port === oldMasterPort) return undefined
        owners.add(owner.port)
      }
      if (owners.size !== 1) return undefined
      const [port] = owners
      const [role] = await this.#node(port).admin.call('ROLE') as unknown[]
      if (String(role) !== 'master') return undefined
      return { port, id: this.#node(port).id, slot }
    })
  }

  /** Kills every node and removes the directory. */
  async stop (): Promise<void> {
    process.off('exit', this.#orphaned)
    await Promise.all(this.#nodes.map(async (node) => {
      node.dead = true
      node.admin.disconnect()
      if (node.process.exitCode === null && node.process.signalCode === null) node.process.kill('SIGKILL')
      await node.exited
    }))
    rmSync(this.#dir, { recursive: true, force: true })
  }

  #live (): OwnNode[] {
    const live = this.#nodes.filter((node) => !node.dead)
    if (live.length === 0) throw new Error('no live node')
    return live
  }

  #node (port: number): OwnNode {
    const node = this.#nodes.find((candidate) => candidate.port === port)
    if (node === undefined) throw new Error(`no node on port ${port}`)
    return node
  }

  /** Every node: cluster_state:ok, the same 3 masters covering all slots, each with a replica whose link is up. */
  async #waitHealthy (timeoutMs = 20_000): Promise<void> {
    await until('a healthy cluster', timeoutMs, async () => {
      for (const node of this.#live()) {
        if (!(await clusterOk(node.admin))) return undefined
        const view = parseNodes(String(await node.admin.call('CLUSTER', 'NODES')))
        const masters = view.filter((line) => line.role === 'master' && line.slots.length > 0)
        const replicas = view.filter((line) => line.role === 'replica')
        if (view.length !== NODE_COUNT || masters.length !== 3 || replicas.length !== 3 || view.some((line) => line.failing)) return undefined
        if (!masters.every((master) => replicas.some((replica) => replica.masterId === master.id))) return undefined
        if (view.find((line) => line.id === node.id)?.role === 'replica') {
          const info = String(await node.admin.call('INFO', 'replication'))
          if (!info.includes('master_link_status:up')) return undefined
        }
      }
      return true
    })
  }
}

function spawnNode (dir: string, port: number, busPort: number): OwnNode & { ready: Promise<void> } {
  const child = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no',
    '--dir', dir,
    '--cluster-enabled', 'yes',
    '--cluster-config-file', join(dir, `nodes-${port}.conf`),
    '--cluster-port', String(busPort),
    '--cluster-node-timeout', '1000',
    // Any replica may take over, however long its link was down; reads stop when the cluster is down.
    '--cluster-replica-validity-factor', '0',
    '--cluster-allow-reads-when-down', 'no',
    // A replica syncs at once, not after the default 5 s wait for more replicas to join a diskless transfer.
    '--repl-diskless-sync-delay', '0'
  ], { stdio: ['ignore', 'pipe', 'inherit'] })
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => { output = (output + chunk.toString()).slice(-10_000) })
  const exited = once(child, 'exit')
  const ready = new Promise<void>((resolve, reject) => {
    child.once('error', reject)
    exited.then(([code, signal]) => reject(new Error(`redis-server on ${port} exited with ${code ?? signal}: ${output}`)), () => {})
    const onData = (): void => {
      if (!output.includes('Ready to accept connections')) return
      child.stdout?.off('data', onData)
      resolve()
    }
    child.stdout?.on('data', onData)
  })
  const admin = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 50 })
  admin.on('error', () => {})
  return { port, busPort, process: child, exited, role: 'replica', id: '', dead: false, admin, output: () => output, ready }
}

function parseNodes (text: string): NodeView[] {
  return text.trim().split('\n').map((line) => {
    const [id, address, flags, master, , , , , ...slots] = line.trim().split(' ')
    const flagList = flags.split(',')
    return {
      id,
      port: Number(/:(\d+)@/.exec(address)?.[1]),
      role: flagList.includes('master') ? 'master' : 'replica',
      masterId: master === '-' ? null : master,
      failing: flagList.includes('fail') || flagList.includes('fail?'),
      // Importing or migrating slots are written [slot->-id]; a fresh test cluster has none.
      slots: slots.filter((range) => !range.startsWith('[')).map((range) => {
        const [from, to = from] = range.split('-').map(Number)
        return [from, to] as [number, number]
      })
    }
  })
}

function ownerOf (view: NodeView[], slot: number): NodeView | undefined {
  return view.find((line) => line.role === 'master' && !line.failing && line.slots.some(([from, to]) => slot >= from && slot <= to))
}

async function clusterOk (admin: Redis): Promise<boolean> {
  return String(await admin.call('CLUSTER', 'INFO')).includes('cluster_state:ok')
}

/** Polls `check` every 50 ms until it returns something other than undefined; errors count as "not yet". */
async function until<T> (what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const result = await check()
      if (result !== undefined) return result
    } catch (error) {
      last = error
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last === undefined ? '' : `: ${String(last)}`}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** A worker's sharded subscriber: SSUBSCRIBE, one channel at a time (each may be on another shard), keeping what arrives. */
export class ShardedSubscriber {
  readonly published = new Collected<Published>()
  readonly client: Cluster

  private constructor (cluster: TestRedisCluster) {
    this.client = new Cluster(cluster.startupNodes, { shardedSubscribers: true })
    this.client.on('error', () => {})
    this.client.on('smessageBuffer', (channel: Buffer, message: Buffer) => {
      this.published.push({ channel: channel.toString(), message })
    })
  }

  static async start (t: Test, cluster: TestRedisCluster, channels: string[]): Promise<ShardedSubscriber> {
    const subscriber = new ShardedSubscriber(cluster)
    t.teardown(() => subscriber.client.disconnect())
    // SSUBSCRIBE answers once the shard has the subscription: what is SPUBLISHed after it is delivered.
    for (const channel of channels) await subscriber.client.ssubscribe(channel)
    return subscriber
  }

  on (channel: string): Buffer[] {
    return this.published.items.filter((item) => item.channel === channel).map(({ message }) => message)
  }
}

export interface StreamEntry {
  id: string
  fields: Record<string, Buffer>
}

/** Reads streams through a Cluster client of its own (XREAD BLOCK holds its connection to the key's shard). */
export class StreamReader {
  readonly client: Cluster

  constructor (t: Test, cluster: TestRedisCluster) {
    this.client = new Cluster(cluster.startupNodes)
    this.client.on('error', () => {})
    t.teardown(() => this.client.disconnect())
  }

  async range (key: string): Promise<StreamEntry[]> {
    return (await this.client.xrangeBuffer(key, '-', '+')).map(toEntry)
  }

  /**
   * Waits, with XREAD BLOCK, for an entry of `key` that matches; entries already there count. An error (the shard
   * failing over) is retried until the deadline.
   */
  async waitFor (key: string, match: (entry: StreamEntry) => boolean, what: string, timeoutMs = 10_000): Promise<StreamEntry> {
    const deadline = Date.now() + timeoutMs
    let last = '0'
    let error: unknown
    while (Date.now() < deadline) {
      try {
        const reply = await this.client.xreadBuffer('BLOCK', Math.max(1, Math.min(500, deadline - Date.now())), 'STREAMS', key, last)
        for (const [, entries] of reply ?? []) {
          for (const raw of entries) {
            const entry = toEntry(raw)
            last = entry.id
            if (match(entry)) return entry
          }
        }
      } catch (err) {
        error = err
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
    throw new Error(`timed out waiting for ${what} on ${key}${error === undefined ? '' : `: ${String(error)}`}`)
  }
}

/** One entry as XRANGE/XREAD give it with Buffers, its fields by name. */
export function toEntry ([id, flat]: [Buffer, Buffer[]]): StreamEntry {
  const fields: Record<string, Buffer> = {}
  for (let i = 0; i < flat.length; i += 2) fields[flat[i].toString()] = flat[i + 1]
  return { id: id.toString(), fields }
}
