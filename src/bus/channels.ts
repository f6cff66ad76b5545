import type { Track } from '../track.js'

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
  /**
   * When this stream of the call started (epoch ms), for the names that are one stream's only: its audio stream in
   * Streams mode, so a later stream of the same call never writes into an earlier one's.
   */
  epoch?: number
  /** The call's tracks (docs/redis-contract.md, "Tracks"); its audio has a name per track only when it has two. */
  tracks?: readonly Track[]
  /** One track of a call with two: its frames go to names of its own, but for `inbound`'s, which are the call's. */
  track?: Track
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

/** `{prefix}audio:<call tag>`, and for the `outbound` track of a call with two, `:outbound` after it. */
export function audioChannel (prefix: string, call: CallRef): string {
  return `${prefix}audio:${callTag(call)}${trackSuffix(call)}`
}

/**
 * Streams mode: the key of one stream of a call's audio, `{prefix}audio:<call tag>:<epoch>`, and `:outbound` after it
 * for that track. Without an epoch it is spelled as the audio channel.
 */
export function audioStreamKey (prefix: string, call: CallRef): string {
  return call.epoch === undefined ? audioChannel(prefix, call) : `${prefix}audio:${callTag(call)}:${call.epoch}${trackSuffix(call)}`
}

/** The refs of each track of a call, for names that every track has (its audio); one, the call's own, for one track. */
export function trackRefs (call: CallRef): CallRef[] {
  const { tracks } = call
  return tracks === undefined || tracks.length < 2 ? [call] : tracks.map((track) => ({ ...call, track }))
}

/** The caller's track keeps the call's names, so a worker that knows nothing of tracks hears the caller. */
function trackSuffix ({ track }: CallRef): string {
  return track === undefined || track === 'inbound' ? '' : `:${track}`
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
