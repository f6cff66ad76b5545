/** Channel names of the Redis contract (docs/redis-contract.md). Every name starts with REDIS_PREFIX. */
export function callsChannel (prefix: string): string {
  return `${prefix}calls`
}

export function audioChannel (prefix: string, interactionId: string): string {
  return `${prefix}audio:${interactionId}`
}

/** Every call's audio channel, for PSUBSCRIBE. */
export function audioChannelPattern (prefix: string): string {
  return audioChannel(prefix, '*')
}

/** Where workers publish audio and commands for one call (docs/redis-contract.md, "Speak into a call"). */
export function playbackChannel (prefix: string, interactionId: string): string {
  return `${prefix}playback:${interactionId}`
}
