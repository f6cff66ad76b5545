/**
 * For the processes a benchmark starts: end when the benchmark is gone, even killed with SIGKILL, which it cannot
 * pass on (bench/children.ts). An orphan gets a new parent, so a changed process.ppid means the benchmark has died.
 * bench/probe.mjs, preloaded into the servers by plain node, does the same in its own lines.
 */
export function exitWithParent (): void {
  // The benchmark passes its pid (bench/run.ts), so one that died before this line ran is seen too.
  const parent = Number(process.env.BENCH_PARENT_PID) || process.ppid
  setInterval(() => {
    if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL')
  }, 500).unref()
}
