/**
 * Parses text that must hold one JSON object: vendor messages and playback commands. Anything else throws the
 * error that `refuse` makes of the problem ("is not JSON", "is not a JSON object").
 */
export function parseJsonObject (text: string, refuse: (problem: string) => Error): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw refuse('is not JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw refuse('is not a JSON object')
  return value as Record<string, unknown>
}
