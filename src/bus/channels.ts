/**
 * Channel and key names of the Redis contract (docs/redis-contract.md). Every name starts with REDIS_PREFIX. A call
 * is (tenant, interaction_id) everywhere, so two tenants' calls with the same id never meet.
 */

/** A call as Redis names it. */
export interface CallRef {
  tenantId: string | null
  interactionId: string
}

/** Stands for "no tenant" in names; no tenant id starts with `_`. */
const NO_TENANT = '_'

/**
 * `{tenant:interaction_id}`, in every per-call name. The braces make it a Redis Cluster hash tag, so one call's
 * channels and keys share a slot.
 */
export function callTag (tenantId: string | null, interactionId: string): string {
  return `{${tenantId ?? NO_TENANT}:${interactionId}}`
}

export function callsChannel (prefix: string): string {
  return `${prefix}calls`
}

export function audioChannel (prefix: string, tenantId: string | null, interactionId: string): string {
  return `${prefix}audio:${callTag(tenantId, interactionId)}`
}

/** Every call's audio channel, for PSUBSCRIBE. */
export function audioChannelPattern (prefix: string): string {
  return `${prefix}audio:*`
}

/** Where workers publish audio and commands for one call (docs/redis-contract.md, "Speak into a call"). */
export function playbackChannel (prefix: string, tenantId: string | null, interactionId: string): string {
  return `${prefix}playback:${callTag(tenantId, interactionId)}`
}

/** The call tag (`callTag`) a playback channel's name ends with. */
export function playbackTag (prefix: string, channel: string): string {
  return channel.slice(prefix.length + 'playback:'.length)
}

/** The key a replica holds while it owns a live call (docs/redis-contract.md, "Tenancy"). */
export function claimKey (prefix: string, tenantId: string | null, interactionId: string): string {
  return `${prefix}call:${callTag(tenantId, interactionId)}`
}
