import { exotelStrings, pcmFrame } from './exotel.js'

/*
 * The fuzz corpus: test/fuzz.test.ts sends it to a live gateway, test/fast-media.test.ts holds the frame path's fast
 * reading of media to the full path's on it.
 */

/** A seeded generator, so a failure can be replayed. */
export function prng (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let x = Math.imul(state ^ (state >>> 15), 1 | state)
    x ^= x + Math.imul(x ^ (x >>> 7), 61 | x)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

export interface Frame {
  data: string | Buffer
  binary: boolean
}

/**
 * Malformed Exotel traffic, one connection's worth per call: bad JSON, wrong shapes, bad base64, binary frames,
 * invalid UTF-8, oversized payloads and events out of order, sometimes after a valid start.
 */
export function fuzzConnections (random: () => number, maxMessageBytes: number): () => Frame[] {
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]
  const int = (max: number): number => Math.floor(random() * max)
  const text = (length: number): string => Array.from({ length }, () => String.fromCharCode(32 + int(95))).join('')
  const value = (depth: number): unknown => {
    switch (int(depth > 2 ? 5 : 8)) {
      case 0: return null
      case 1: return random() < 0.5
      case 2: return random() * 1e6 - 5e5
      case 3: return text(int(20))
      case 4: return int(100)
      case 5: return Array.from({ length: int(4) }, () => value(depth + 1))
      default: return Object.fromEntries(Array.from({ length: int(5) }, () => [pick(['event', 'start', 'media', 'payload', 'stream_sid', 'call_sid', text(6)]), value(depth + 1)]))
    }
  }
  const callSid = (): string => `CAfuzz${int(1e9)}`
  const json = (message: unknown): Frame => ({ data: JSON.stringify(message), binary: false })

  const malformed: Array<() => Frame> = [
    () => json(value(0)),
    () => json({ event: pick(['start', 'media', 'dtmf', 'mark', 'stop', 'connected']), ...(value(1) as object) }),
    () => json({ event: 'media', sequence_number: value(2), media: { chunk: value(2), timestamp: value(2), payload: value(2) } }),
    () => json({ event: 'start', start: { call_sid: value(2), account_sid: value(2), custom_parameters: value(2), media_format: value(2) } }),
    () => json({ event: 'media', media: { payload: Buffer.from(text(30)).toString('base64').slice(0, 1 + int(38)) } }),
    () => json({ event: 'media', media: { payload: Buffer.alloc(1 + 2 * int(200)).toString('base64') } }),
    () => json({ event: 'dtmf', dtmf: { digit: value(2), duration: value(2) } }),
    () => json({ event: 'mark', mark: value(1) }),
    () => ({ data: JSON.stringify(value(0)).slice(0, int(40)), binary: false }),
    () => ({ data: Buffer.from(Array.from({ length: 1 + int(300) }, () => int(256))), binary: true }),
    () => ({ data: Buffer.from([0xc3, 0x28, 0xa0, 0xa1, int(256)]), binary: false }), // invalid UTF-8 in a text frame
    () => json({ event: 'media', media: { payload: 'A'.repeat(maxMessageBytes + int(5000)) } }),
    () => ({ data: text(int(200)), binary: false })
  ]
  const outOfOrder: Array<() => Frame[]> = [
    () => [json(exotelStrings.media('MZfuzz', 2, 1, 0, pcmFrame(320, 1)))],
    () => { const sid = callSid(); return [json(exotelStrings.start(sid)), json(exotelStrings.start(sid))] },
    () => { const sid = callSid(); return [json(exotelStrings.stop(sid, 'MZ', 1)), json(exotelStrings.media('MZ', 2, 1, 0, pcmFrame(320, 1)))] },
    () => [json({ event: 'connected' }), json(exotelStrings.dtmf('MZ', 2, '5'))]
  ]
  /** One connection's worth: sometimes a valid start first, so later garbage reaches a live call. */
  return (): Frame[] => {
    const frames: Frame[] = random() < 0.3 ? [json(exotelStrings.start(callSid()))] : []
    if (random() < 0.2) return [...frames, ...pick(outOfOrder)()]
    for (let i = 1 + int(6); i > 0; i--) frames.push(pick(malformed)())
    return frames
  }
}
