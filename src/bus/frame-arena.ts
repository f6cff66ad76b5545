/** A frame waiting for Redis, as the arena sees it: its bytes, moved into a slab while it waits. */
export interface HeldFrame {
  payload: Buffer | object
  offset: number
  length: number
  slab: Slab | null
}

/** Buffered frames are copied into slabs of this size, back to back. */
const ARENA_SLAB_BYTES = 256 * 1024

/** One slab of the arena, and how many frames in it still wait or are in flight. */
export interface Slab {
  bytes: Buffer
  used: number
  live: number
}

/** Free slabs kept for reuse; past this many, a freed slab is left to the garbage collector. */
const MAX_FREE_SLABS = 64

/**
 * Packs buffered frames back to back into slabs of their own, so what waits costs its bytes. A slab whose frames
 * have all been sent or dropped is reused at once rather than left for the garbage collector, which lets dead
 * ArrayBuffers pile up far past the bound before it runs.
 */
export class FrameArena {
  #slab: Slab = newSlab()
  readonly #free: Slab[] = []

  /** Moves a waiting frame into a slab (a large one into a Buffer of its own), to be released once sent or dropped. */
  hold (pending: HeldFrame): void {
    const frame = pending.payload as Buffer
    if (frame.length > ARENA_SLAB_BYTES / 8) {
      pending.payload = Buffer.copyBytesFrom(frame)
      return
    }
    let slab = this.#slab
    if (slab.used + frame.length > ARENA_SLAB_BYTES) {
      slab = this.#slab = this.#free.pop() ?? newSlab()
      slab.used = 0
    }
    frame.copy(slab.bytes, slab.used)
    pending.payload = slab.bytes
    pending.offset = slab.used
    pending.slab = slab
    slab.used += frame.length
    slab.live++
  }

  /** One frame of `slab` is gone for good: nothing reads its bytes again. */
  release (slab: Slab): void {
    if (--slab.live > 0) return
    if (slab === this.#slab) slab.used = 0
    else if (this.#free.length < MAX_FREE_SLABS) this.#free.push(slab)
  }
}

function newSlab (): Slab {
  return { bytes: Buffer.allocUnsafeSlow(ARENA_SLAB_BYTES), used: 0, live: 0 }
}
