/**
 * A rate limit as a token bucket: `perMs` tokens a millisecond, at most `burstMs` worth saved up. The owner refills it
 * from a clock it already reads (the keepalive sweep), so taking, on the frame path, is one subtraction.
 */
export class TokenBucket {
  #tokens: number
  readonly #capacity: number
  readonly #perMs: number

  constructor (perMs: number, burstMs: number) {
    this.#perMs = perMs
    this.#capacity = perMs * burstMs
    this.#tokens = this.#capacity
  }

  /** Takes `amount`; false once more has been taken than the rate and its burst allow. */
  take (amount: number): boolean {
    this.#tokens -= amount
    return this.#tokens >= 0
  }

  refill (elapsedMs: number): void {
    this.#tokens = Math.min(this.#capacity, this.#tokens + elapsedMs * this.#perMs)
  }
}
