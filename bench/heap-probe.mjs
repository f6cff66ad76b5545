// Preloaded by bench/heap.ts (node --expose-gc --import): on SIGWINCH (close-with-grace ends the gateway on SIGUSR2),
// two full collections, then heapUsed on stdout; with HEAP_SNAPSHOT_DIR set, a heap snapshot there as well.
import { writeHeapSnapshot } from 'node:v8'

process.on('SIGWINCH', () => {
  globalThis.gc()
  globalThis.gc()
  if (process.env.HEAP_SNAPSHOT_DIR) writeHeapSnapshot(`${process.env.HEAP_SNAPSHOT_DIR}/${process.pid}-${Date.now()}.heapsnapshot`)
  process.stdout.write(`heap_used ${process.memoryUsage().heapUsed}\n`)
})
