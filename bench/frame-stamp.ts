/**
 * The first 16 PCM bytes of every benchmark frame: call index, sequence and the intended send time (process.hrtime
 * in ns, as a double; CLOCK_MONOTONIC, so the load generator and the sink on one host share it). The gateway passes
 * PCM through untouched, so the stamp survives to Redis.
 */

export function stamp (pcm: Buffer, call: number, seq: number, intendedNs: number): void {
  pcm.writeUInt32LE(call, 0)
  pcm.writeUInt32LE(seq, 4)
  pcm.writeDoubleLE(intendedNs, 8)
}

export function readStamp (pcm: Buffer): { call: number, seq: number, intendedNs: number } {
  return { call: pcm.readUInt32LE(0), seq: pcm.readUInt32LE(4), intendedNs: pcm.readDoubleLE(8) }
}

export function nowNs (): number {
  return Number(process.hrtime.bigint())
}
