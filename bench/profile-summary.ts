/**
 * Reads a V8 .cpuprofile (node --cpu-prof; BENCH_CPU_PROF=1 writes one per server run to bench/results/profiles/)
 * and prints where the time went: by owner (the gateway's own code, each package, Node, idle, GC), then the
 * functions by self time and the gateway's functions by total time. Open the same file in Chrome DevTools or
 * speedscope for the flame graph.
 *
 *   npx tsx bench/profile-summary.ts bench/results/profiles/<run>[/<file>.cpuprofile] [top]
 *
 * Given a run's directory, it reads the largest profile in it: the main thread's.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  hitCount?: number
  children?: number[]
}

const [path, topArgument] = process.argv.slice(2)
if (path === undefined) throw new Error('usage: profile-summary <directory|file.cpuprofile> [top]')
const file = statSync(path).isDirectory()
  ? readdirSync(path).map((name) => join(path, name)).sort((a, b) => statSync(b).size - statSync(a).size)[0]
  : path
const top = Number(topArgument ?? 25)
const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[], startTime: number, endTime: number, samples: number[], timeDeltas: number[] }
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const totalHits = profile.nodes.reduce((sum, node) => sum + (node.hitCount ?? 0), 0)
const percent = (hits: number): string => `${((hits / totalHits) * 100).toFixed(2).padStart(6)} %`

function owner ({ url, functionName }: ProfileNode['callFrame']): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)'
  const packageName = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (packageName !== null) return packageName[1]
  if (url.startsWith('node:')) return 'node'
  if (url.startsWith('wasm:')) return '(wasm)'
  return 'gateway'
}

const label = ({ functionName, url, lineNumber }: ProfileNode['callFrame']): string =>
  `${functionName || '(anonymous)'} ${url.replace(/^.*\/(node_modules|src|plugins|routes|bench)\//, '$1/')}:${lineNumber + 1}`

const selfBy = new Map<string, number>()
const ownerBy = new Map<string, number>()
for (const node of profile.nodes) {
  const hits = node.hitCount ?? 0
  selfBy.set(label(node.callFrame), (selfBy.get(label(node.callFrame)) ?? 0) + hits)
  ownerBy.set(owner(node.callFrame), (ownerBy.get(owner(node.callFrame)) ?? 0) + hits)
}

// Total time of the gateway's functions: each node's subtree, counted once per function on any one stack.
const totalBy = new Map<string, number>()
function walk (node: ProfileNode, onStack: Set<string>): number {
  let hits = node.hitCount ?? 0
  const name = label(node.callFrame)
  const counted = owner(node.callFrame) === 'gateway' && !onStack.has(name)
  if (counted) onStack.add(name)
  for (const child of node.children ?? []) hits += walk(byId.get(child)!, onStack)
  if (counted) {
    onStack.delete(name)
    totalBy.set(name, (totalBy.get(name) ?? 0) + hits)
  }
  return hits
}
walk(profile.nodes[0], new Set())

const print = (title: string, entries: Map<string, number>, count: number): void => {
  process.stdout.write(`\n${title}\n`)
  for (const [name, hits] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, count)) process.stdout.write(`${percent(hits)}  ${name}\n`)
}
/**
 * The longest stretches without an idle sample: what holds the event loop for many milliseconds at once, which
 * per-function totals hide. Each is listed with the functions (self time) that filled it.
 */
function stalls (count: number): void {
  const idle = profile.nodes.find((node) => node.callFrame.functionName === '(idle)')?.id
  const found: Array<{ at: number, ms: number, functions: Map<string, number> }> = []
  let at = 0
  let current: { at: number, ms: number, functions: Map<string, number> } | null = null
  profile.samples.forEach((sample, index) => {
    const delta = profile.timeDeltas[index] / 1000
    at += delta
    if (sample === idle) {
      if (current !== null) found.push(current)
      current = null
      return
    }
    current ??= { at, ms: 0, functions: new Map() }
    current.ms += delta
    const name = label(byId.get(sample)!.callFrame)
    current.functions.set(name, (current.functions.get(name) ?? 0) + delta)
  })
  process.stdout.write('\nLongest busy stretches (no idle sample)\n')
  for (const stall of found.sort((a, b) => b.ms - a.ms).slice(0, count)) {
    const heaviest = [...stall.functions].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([name, ms]) => `${name} ${ms.toFixed(1)} ms`).join('; ')
    process.stdout.write(`${stall.ms.toFixed(1).padStart(7)} ms at ${(stall.at / 1000).toFixed(2)} s: ${heaviest}\n`)
  }
}

process.stdout.write(`${file}: ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s, ${totalHits} samples\n`)
print('By owner', ownerBy, 20)
print('Functions by self time', selfBy, top)
print('Gateway functions by total time', totalBy, top)
stalls(15)
