import type { CoreConfig } from '../core-config.js'
import type { Log } from '../logger.js'
import type { Metrics } from '../metrics.js'
import type { Bus } from './bus.js'
import { parseClusterNodes } from '../cluster-nodes.js'
import { RedisBus } from './redis-bus.js'
import { pubSubTransport, streamsTransport } from './transports.js'

/** The settings a bus is built from. */
export type BusConfig = Pick<CoreConfig, 'REDIS_URL' | 'REDIS_PREFIX' | 'REDIS_BUFFER_MAX_BYTES' | 'REDIS_BUFFER_MAX_EVENTS_PER_CALL' |
'REDIS_STALL_TIMEOUT_MS' | 'REDIS_TRANSPORT' | 'REDIS_CLUSTER_NODES' | 'REDIS_STREAM_MAXLEN' | 'REDIS_STREAM_TTL_S' | 'REDIS_EVENTS_MAXLEN' |
'CALL_CLAIM_TTL_MS'>

/** The bus the configuration asks for: pub/sub or Streams, over one Redis or a Redis Cluster. */
export function createBus (config: BusConfig, log: Log, metrics: Metrics): Bus {
  const clusterNodes = config.REDIS_CLUSTER_NODES === undefined ? null : parseClusterNodes(config.REDIS_CLUSTER_NODES)
  const transport = config.REDIS_TRANSPORT === 'streams'
    ? streamsTransport(config.REDIS_PREFIX, {
      maxLen: config.REDIS_STREAM_MAXLEN,
      ttlMs: config.REDIS_STREAM_TTL_S * 1000,
      claimTtlMs: config.CALL_CLAIM_TTL_MS,
      eventsMaxLen: config.REDIS_EVENTS_MAXLEN
    })
    : pubSubTransport(config.REDIS_PREFIX, clusterNodes !== null)
  return new RedisBus({
    target: { url: config.REDIS_URL, clusterNodes },
    transport,
    prefix: config.REDIS_PREFIX,
    log,
    metrics,
    bufferMaxBytes: config.REDIS_BUFFER_MAX_BYTES,
    maxEventsPerCall: config.REDIS_BUFFER_MAX_EVENTS_PER_CALL,
    stallTimeoutMs: config.REDIS_STALL_TIMEOUT_MS
  })
}
