/** One seed of a Redis Cluster, as REDIS_CLUSTER_NODES names it. */
export interface ClusterNode {
  host: string
  port: number
}

/**
 * Parses REDIS_CLUSTER_NODES: comma-separated `host:port` seeds (an IPv6 host in brackets, `[::1]:7000`). Throws on
 * anything else, naming the bad entry, so a typo stops the process instead of leaving it without a cluster.
 */
export function parseClusterNodes (value: string): ClusterNode[] {
  const nodes = value.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '').map((entry) => {
    const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(entry)
    const port = match === null ? NaN : Number(match[3])
    if (match === null || port < 1 || port > 65535) throw new Error(`must be host:port entries, separated by commas (bad: "${entry}")`)
    return { host: match[1] ?? match[2], port }
  })
  if (nodes.length === 0) throw new Error('must name at least one host:port')
  return nodes
}
