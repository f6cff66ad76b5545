/**
 * Channel and key names of the Redis contract (docs/redis-contract.md). Every name starts with REDIS_PREFIX. A call
 * is (tenant, interaction_id) everywhere, so two tenants' calls with the same id never meet.
 */

/** A call as Redis names it. */
export interface CallRef {
  tenantId: string | null
  /** Whether a credential vouches for the tenant, or the client merely named it: the two never share names. */
  tenantVerified: boolean
  interactionId: string
}

/**
 * `{tenant:interaction_id}`, in every per-call name. The tenant part is the tenant id when a credential vouches for
 * it, `~` and the id when a client merely named it (so such a call can never take a verified tenant's names), and
 * `_` for none; no tenant id starts with `~` or `_`. The braces make the tag a Redis Cluster hash tag, so one call's
 * channels and key can share a slot.
 */
export function callTag ({ tenantId, tenantVerified, interactionId }: CallRef): string {
  const tenant = tenantId === null ? '_' : tenantVerified ? tenantId : `~${tenantId}`
  return `{${tenant}:${interactionId}}`
}

export function callsChannel (prefix: string): string {
  return `${prefix}calls`
}

export function audioChannel (prefix: string, call: CallRef): string {
  return `${prefix}audio:${callTag(call)}`
}

/** Every call's audio channel, for PSUBSCRIBE. */
export function audioChannelPattern (prefix: string): string {
  return `${prefix}audio:*`
}

/** Where workers publish audio and commands for one call (docs/redis-contract.md, "Speak into a call"). */
export function playbackChannel (prefix: string, call: CallRef): string {
  return `${prefix}playback:${callTag(call)}`
}

/** The call tag (`callTag`) a playback channel's name ends with. */
export function playbackTag (prefix: string, channel: string): string {
  return channel.slice(prefix.length + 'playback:'.length)
}

/** The key a replica holds while it owns a live call (docs/redis-contract.md, "Tenancy"). */
export function claimKey (prefix: string, call: CallRef): string {
  return `${prefix}call:${callTag(call)}`
}
