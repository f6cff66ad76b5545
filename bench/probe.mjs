// Preloaded into the server under test (node --import): once a second, event-loop delay, utilisation, CPU, RSS and
// garbage-collection pauses as one JSON line appended to $PROBE_FILE. No change to the server itself. With WORKERS > 1
// every process of the group (the primary and each worker) writes its own lines, told apart by `pid`.
import cluster from 'node:cluster'
import { appendFileSync } from 'node:fs'
import { PerformanceObserver, constants, monitorEventLoopDelay, performance } from 'node:perf_hooks'

// The server ends when the benchmark that started it is gone, even killed with SIGKILL (bench/lifeline.ts): a stopped
// run must not leave a server pinned to a core. BENCH_PARENT_PID is the benchmark's pid, so a benchmark that dies
// before this line runs is seen too. A worker of WORKERS > 1 (node:cluster passes it this preload) watches its primary
// instead, which watches the benchmark.
const parent = cluster.isWorker ? process.ppid : Number(process.env.BENCH_PARENT_PID) || process.ppid
setInterval(() => {
  if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL')
}, 500).unref()

const file = process.env.PROBE_FILE
if (file) {
  const delay = monitorEventLoopDelay({ resolution: 10 })
  delay.enable()
  let elu = performance.eventLoopUtilization()
  // Pauses by kind: scavenges (young generation) are frequent and short; mark-compacts are the long ones.
  let gc = { scavenge_ms: 0, major_ms: 0, max_ms: 0, count: 0 }
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const major = entry.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR
      gc.count++
      gc.max_ms = Math.max(gc.max_ms, entry.duration)
      if (major) gc.major_ms += entry.duration
      else gc.scavenge_ms += entry.duration
    }
  }).observe({ entryTypes: ['gc'] })
  setInterval(() => {
    const now = performance.eventLoopUtilization()
    const cpu = process.cpuUsage()
    appendFileSync(file, `${JSON.stringify({
      pid: process.pid,
      t: performance.now(),
      eld_p99_ms: delay.percentile(99) / 1e6 - 10,
      eld_max_ms: delay.max / 1e6 - 10,
      elu: performance.eventLoopUtilization(now, elu).utilization,
      cpu_us: cpu.user + cpu.system,
      rss: process.memoryUsage.rss(),
      heap_used: process.memoryUsage().heapUsed,
      gc
    })}\n`)
    elu = now
    delay.reset()
    gc = { scavenge_ms: 0, major_ms: 0, max_ms: 0, count: 0 }
  }, 1000).unref()
}
