/**
 * docker-compose.yml must start beside the README's "Run" (a Redis of the host on 127.0.0.1:6379), and its drain
 * and grace period must be what the README and docs/operations.md say.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'

const read = (path: string): string => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8')
const compose = read('docker-compose.yml')
const readme = read('README.md')
const operations = read('docs/operations.md')

t.test('compose publishes no host port 6379, which the README\'s Run needs for the host\'s Redis', async (t) => {
  const published = [...compose.matchAll(/^\s+- "([^"]+)"$/gm)].map((line) => line[1])
  t.ok(published.length >= 2, `published ports found: ${published.join(', ')}`)
  for (const mapping of published) {
    // "[address:]hostPort:containerPort", the host port maybe "${VAR:-default}".
    const host = /^(?:[\d.]+:)?(?:\$\{\w+:-(\d+)\}|(\d+)):\d+$/.exec(mapping)
    t.ok(host, `${mapping} is a port mapping`)
    t.not(host?.[1] ?? host?.[2], '6379', `${mapping} leaves the host's 6379 alone`)
  }
  t.match(compose, /REDIS_URL: redis:\/\/redis:6379/, 'the gateway reaches Redis on the compose network')
})

t.test('compose\'s drain fits its grace period, as the README and docs/operations.md say', async (t) => {
  const drainMs = Number(/DRAIN_TIMEOUT_MS: "(\d+)"/.exec(compose)?.[1])
  const graceS = Number(/stop_grace_period: (\d+)s/.exec(compose)?.[1])
  t.ok(drainMs / 1000 + 15 < graceS, `DRAIN_TIMEOUT_MS ${drainMs} ms + 15 s is under stop_grace_period ${graceS} s`)
  t.match(operations, new RegExp(`\`docker-compose.yml\` sets \`DRAIN_TIMEOUT_MS\` to ${drainMs / 1000} s and gives the container \`stop_grace_period: ${graceS}s\``), 'docs/operations.md')
  t.match(readme, new RegExp(`Compose sets\\s+\`DRAIN_TIMEOUT_MS\` to ${drainMs / 1000} s and gives the container ${graceS} s to stop`), 'README.md')
})
