import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import type { ClusterNode } from '../cluster-nodes.js'
import type { RedisClient } from './transports.js'

/** Where the bus's connections go: the one Redis of REDIS_URL, or the Redis Cluster of REDIS_CLUSTER_NODES. */
export interface RedisTarget {
  url: string
  /** The cluster's seeds; null for one Redis. */
  clusterNodes: ClusterNode[] | null
}

/**
 * One of the bus's connections, to one Redis or to the cluster (then one connection per node, routed by slot). On a
 * cluster, REDIS_URL gives what every node needs, the user, password and TLS, and its host is not used.
 */
export function connectRedis (target: RedisTarget, options: RedisOptions, clusterOptions: ClusterOptions = {}): RedisClient {
  if (target.clusterNodes === null) return new Redis(target.url, options)
  const { enableAutoPipelining, enableOfflineQueue, ...redisOptions } = options
  return new Cluster(target.clusterNodes, {
    enableAutoPipelining,
    enableOfflineQueue,
    redisOptions: { ...credentialsOf(target.url), ...redisOptions },
    ...clusterOptions
  })
}

function credentialsOf (url: string): RedisOptions {
  const parsed = new URL(url)
  return {
    username: parsed.username === '' ? undefined : decodeURIComponent(parsed.username),
    password: parsed.password === '' ? undefined : decodeURIComponent(parsed.password),
    tls: parsed.protocol === 'rediss:' ? {} : undefined
  }
}
