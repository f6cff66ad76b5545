/**
 * deploy/kubernetes/cluster-mode/configmap-patch.yaml, patched over the base ConfigMap as its comment says, is a
 * configuration the gateway starts with: a Redis Cluster in Streams mode.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { parseClusterNodes } from '../src/cluster-nodes.js'
import { loadConfig } from '../src/config.js'

/** The `data:` of a ConfigMap or its patch: every manifest here writes one `  KEY: "value"` per line. */
function data (path: string): Record<string, string> {
  const text = readFileSync(new URL(`../${path}`, import.meta.url), 'utf8')
  return Object.fromEntries([...text.matchAll(/^ {2}([A-Z0-9_]+): "(.*)"$/gm)].map(([, key, value]) => [key, value]))
}

t.test('the cluster-mode patch over the base ConfigMap loads as a Streams configuration on a Redis Cluster', async (t) => {
  const base = data('deploy/kubernetes/configmap.yaml')
  const patch = data('deploy/kubernetes/cluster-mode/configmap-patch.yaml')
  t.ok(Object.keys(base).length > 20 && Object.keys(patch).length >= 3, 'both files were read')
  const config = loadConfig({ env: { ...base, ...patch }, dotenvFiles: [] })
  t.equal(config.REDIS_TRANSPORT, 'streams')
  const documented = /in Streams mode set `MAX_CONCURRENT_CALLS=(\d+)`/.exec(readFileSync(new URL('../docs/operations.md', import.meta.url), 'utf8'))
  t.equal(config.MAX_CONCURRENT_CALLS, Number(documented?.[1]), 'the Streams call limit docs/operations.md gives')
  t.equal(parseClusterNodes(config.REDIS_CLUSTER_NODES as string).length, 3, 'three seeds')
  t.equal(loadConfig({ env: base, dotenvFiles: [] }).REDIS_TRANSPORT, 'pubsub', 'the base stays on pub/sub')
})
