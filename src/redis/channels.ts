/** Channel names of the Redis contract (docs/redis-contract.md). Every name starts with REDIS_PREFIX. */
export function callsChannel (prefix: string): string {
  return `${prefix}calls`
}

export function audioChannel (prefix: string, interactionId: string): string {
  return `${prefix}audio:${interactionId}`
}
