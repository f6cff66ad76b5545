/**
 * One leg of a call (docs/redis-contract.md, "Tracks"): `inbound` is what the caller or customer says, `outbound` what
 * the agent or bot says. Vendors label their frames with it, and the bus names each track's audio by it.
 */
export type Track = 'inbound' | 'outbound'
