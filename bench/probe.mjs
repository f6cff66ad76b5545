// Preloaded into the server under test (node --import): once a second, event-loop delay, utilisation, CPU and RSS
// as one JSON line appended to $PROBE_FILE. No change to the server itself.
import { appendFileSync } from 'node:fs'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'

const file = process.env.PROBE_FILE
if (file) {
  const delay = monitorEventLoopDelay({ resolution: 10 })
  delay.enable()
  let elu = performance.eventLoopUtilization()
  setInterval(() => {
    const now = performance.eventLoopUtilization()
    const cpu = process.cpuUsage()
    appendFileSync(file, `${JSON.stringify({
      t: performance.now(),
      eld_p99_ms: delay.percentile(99) / 1e6 - 10,
      elu: performance.eventLoopUtilization(now, elu).utilization,
      cpu_us: cpu.user + cpu.system,
      rss: process.memoryUsage.rss()
    })}\n`)
    elu = now
    delay.reset()
  }, 1000).unref()
}
