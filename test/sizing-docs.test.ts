/**
 * The per-pod call limit is written in four places: docs/operations.md ("Sizing", a marked line and the table), the
 * ConfigMap, and the "Near the call limit" alert. They must agree with each other, and with what docs/benchmarks.md
 * measured: the limit is at most 80 % of the measured 20 ms figure.
 */
import { readFileSync } from 'node:fs'
import t, { type Test } from 'tap'

const read = (path: string): string => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8')

function match (t: Test, text: string, pattern: RegExp, what: string): number {
  const found = pattern.exec(text)
  t.ok(found, `${what} found (${pattern.source})`)
  return Number(found?.[1])
}

const operations = read('docs/operations.md')
const sizing = operations.slice(operations.indexOf('\n## Sizing\n'), operations.indexOf('\n## Runbook\n'))
const benchmarks = read('docs/benchmarks.md')
const configmap = read('deploy/kubernetes/configmap.yaml')

t.test('docs/operations.md, the ConfigMap and the near-limit alert give one per-pod call limit', async (t) => {
  const documented = match(t, sizing, /\*\*Per-pod call limit in the manifests: `MAX_CONCURRENT_CALLS=(\d+)`\*\*/, 'the marked limit in "Sizing"')
  const configured = match(t, configmap, /^ {2}MAX_CONCURRENT_CALLS: "(\d+)"$/m, 'MAX_CONCURRENT_CALLS in configmap.yaml')
  const alert = match(t, operations, /^\| Near the call limit \| `sum by \(instance\) \(rtaa_calls_active\) > 0\.8 \* (\d+)`/m, 'the "Near the call limit" threshold')
  const tableRow = match(t, sizing, /^\| 16 kHz, 20 ms frames[^|]*\|[^|]*\|[^|]*\| \*\*(\d+)\*\* \|/m, 'the 20 ms row of the sizing table')
  t.equal(configured, documented, 'configmap.yaml sets the limit docs/operations.md documents')
  t.equal(alert, documented, 'the alert fires at 80 % of that limit')
  t.equal(tableRow, documented, 'the table\'s 20 ms row names the same limit')
})

t.test('the limit and the sizing table take their figures from docs/benchmarks.md', async (t) => {
  // The headline tables: "| Max calls per core (…) | baseline | gateway | ratio |", 16 kHz / 20 ms first.
  const rows = [...benchmarks.matchAll(/^\| Max calls per core[^|]*\| [\d.]+ \([^)]*\) \| ([\d.]+) \(([^)]*)\) \|/gm)]
  t.equal(rows.length, 2, 'two headline capacities: 16 kHz / 20 ms and 8 kHz / 100 ms')
  const [at20, at100] = rows.map((row) => Number(row[1]))
  const limit = match(t, configmap, /^ {2}MAX_CONCURRENT_CALLS: "(\d+)"$/m, 'MAX_CONCURRENT_CALLS in configmap.yaml')
  t.ok(limit <= 0.8 * at20, `the limit ${limit} keeps 20 % headroom below the measured ${at20} calls per core`)
  const worse20 = Math.min(...rows[0][2].split(',').map(Number))
  t.ok(limit < worse20, `the limit ${limit} is below the worse of the two 20 ms searches (${worse20})`)
  const measured20 = match(t, sizing, /^\| 16 kHz, 20 ms frames[^|]*\|[^|]*\| ([\d.]+) \(/m, 'the measured 20 ms figure in "Sizing"')
  const measured100 = match(t, sizing, /^\| 8 kHz, 100 ms frames[^|]*\|[^|]*\| ([\d.]+) \(/m, 'the measured 100 ms figure in "Sizing"')
  t.equal(measured20, at20, '"Sizing" quotes the 16 kHz / 20 ms capacity of docs/benchmarks.md')
  t.equal(measured100, at100, '"Sizing" quotes the 8 kHz / 100 ms capacity of docs/benchmarks.md')
  const limit100 = match(t, sizing, /^\| 8 kHz, 100 ms frames[^|]*\|[^|]*\|[^|]*\| (\d+) \|/m, 'the 100 ms limit in "Sizing"')
  t.ok(limit100 <= 0.8 * at100, `the 100 ms limit ${limit100} keeps 20 % headroom below ${at100}`)
})
