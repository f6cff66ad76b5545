import { isAscii } from 'node:buffer'

/**
 * The frame path's reading of a JSON media message, straight from its bytes: no string, no parsed object. It vouches
 * only for messages its vendor's TypeBox schema accepts, and says "not sure" (false) for anything it does not fully
 * understand, which then goes through the full path (parse, schema, map) to be accepted or refused there. So it
 * never accepts what the schema refuses; test/fast-media.test.ts holds it to that, and to the same bytes out.
 *
 * What it understands: one object of keys without escapes, whose values are strings without escapes, integers of
 * up to 15 digits, true, false or null, plus one nested object of the same (the media); ASCII only. Anything else
 * (an escape, a float, an array, a repeated key it reads) is left to the full path. The long strings, the whole
 * message's bytes and the payload's end, are checked by Node's own loops (isAscii, indexOf), not byte by byte here.
 */

/** What a field of the layout holds: a vendor counter (integer or numeric string), an id (string), or the audio. */
export type MediaFieldRule = 'sequence' | 'chunk' | 'timestamp' | 'id' | 'payload'

/** Where a vendor's media message keeps its fields. Keys it does not name may hold any simple value. */
export interface MediaLayout {
  /** The value of `event` that makes a message media. */
  readonly event: string
  /** Top-level keys besides `event`, and what each holds. */
  readonly top: Readonly<Record<string, MediaFieldRule>>
  /** The key of the nested media object, which the message must have, and its keys. */
  readonly nestedKey: string
  readonly nested: Readonly<Record<string, MediaFieldRule>>
}

/** One message's reading, written into an object the call owns and reuses. */
export interface MediaScan {
  vendorSeq: number | null
  chunk: number | null
  timestampMs: number | null
  /**
   * The payload's characters, data[payloadStart, payloadEnd): ASCII without a backslash, so the string the full path
   * would parse is `data.toString('latin1', payloadStart, payloadEnd)`. Not checked further: its decoder judges it.
   */
  payloadStart: number
  payloadEnd: number
}

export function newMediaScan (): MediaScan {
  return { vendorSeq: null, chunk: null, timestampMs: null, payloadStart: 0, payloadEnd: 0 }
}

const QUOTE = 0x22
const BACKSLASH = 0x5c
const COLON = 0x3a
const COMMA = 0x2c
const OPEN = 0x7b
const CLOSE = 0x7d
const ZERO = 0x30
const NINE = 0x39
/** A counter's most digits: the schema's numeric strings allow 15, and a number that long is exact as a double. */
const MAX_DIGITS = 15
/** The schema's bound on ids such as stream_sid. */
const MAX_ID_LENGTH = 256

/** Fields, as rule numbers: which one a key names, so a repeated one is seen. */
const RULES: readonly MediaFieldRule[] = ['sequence', 'chunk', 'timestamp', 'id', 'payload']
const EVENT = RULES.length

interface Key {
  bytes: Buffer
  rule: number
}

export class MediaScanner {
  readonly #event: Buffer
  readonly #top: Key[]
  readonly #nestedKey: Buffer
  readonly #nested: Key[]
  /** Position after the last token read: the scan of one message, synchronous, so one scanner serves every call. */
  #at = 0
  #seen = 0

  constructor (layout: MediaLayout) {
    const keys = (fields: Readonly<Record<string, MediaFieldRule>>): Key[] =>
      Object.entries(fields).map(([name, rule]) => ({ bytes: Buffer.from(name), rule: RULES.indexOf(rule) }))
    this.#event = Buffer.from(layout.event)
    this.#top = [{ bytes: Buffer.from('event'), rule: EVENT }, ...keys(layout.top)]
    this.#nestedKey = Buffer.from(layout.nestedKey)
    this.#nested = keys(layout.nested)
  }

  /** True when `data` is a media message this scanner vouches for; `into` then holds its reading. */
  scan (data: Buffer, into: MediaScan): boolean {
    into.vendorSeq = into.chunk = into.timestampMs = null
    into.payloadStart = -1
    this.#at = 0
    this.#seen = 0
    let event = false
    let media = false
    // No escape anywhere and no byte past ASCII: then a string's bytes are its characters.
    if (!isAscii(data) || data.indexOf(BACKSLASH) !== -1 || !this.#open(data)) return false
    for (let first = true; ; first = false) {
      if (this.#closes(data, first)) break
      const keyStart = this.#string(data)
      const keyEnd = this.#at - 1
      if (keyStart < 0 || !this.#colon(data)) return false
      if (matches(data, keyStart, keyEnd, this.#nestedKey)) {
        if (media) return false
        media = true
        if (!this.#nestedObject(data, into)) return false
        continue
      }
      const rule = ruleOf(this.#top, data, keyStart, keyEnd)
      if (rule === EVENT) {
        if (event) return false
        event = true
        const start = this.#string(data)
        if (start < 0 || !matches(data, start, this.#at - 1, this.#event)) return false
      } else if (!this.#field(data, rule, into)) {
        return false
      }
    }
    // Nothing but whitespace may follow the object.
    this.#skipSpace(data)
    return event && media && into.payloadStart >= 0 && this.#at === data.length
  }

  #nestedObject (data: Buffer, into: MediaScan): boolean {
    if (!this.#open(data)) return false
    for (let first = true; ; first = false) {
      if (this.#closes(data, first)) return true
      const keyStart = this.#string(data)
      const keyEnd = this.#at - 1
      if (keyStart < 0 || !this.#colon(data)) return false
      if (!this.#field(data, ruleOf(this.#nested, data, keyStart, keyEnd), into)) return false
    }
  }

  /** Reads one value for `rule` (-1: a key the layout does not name, any simple value). */
  #field (data: Buffer, rule: number, into: MediaScan): boolean {
    if (rule < 0) return this.#simpleValue(data)
    const bit = 1 << rule
    if ((this.#seen & bit) !== 0) return false
    this.#seen |= bit
    switch (RULES[rule]) {
      case 'sequence': return (into.vendorSeq = this.#counter(data)) !== null
      case 'chunk': return (into.chunk = this.#counter(data)) !== null
      case 'timestamp': return (into.timestampMs = this.#counter(data)) !== null
      case 'id': {
        const start = this.#string(data)
        return start >= 0 && this.#at - 1 - start <= MAX_ID_LENGTH
      }
      default: {
        // A control character in it would make the full path refuse the message; it makes the payload's decoder
        // refuse it too, which sends the message to the full path.
        this.#skipSpace(data)
        if (data[this.#at] !== QUOTE) return false
        const end = data.indexOf(QUOTE, this.#at + 1)
        if (end === -1) return false
        into.payloadStart = this.#at + 1
        into.payloadEnd = end
        this.#at = end + 1
        return true
      }
    }
  }

  /** A counter: an integer, or a string of digits (the schema's `^[0-9]{1,15}$`); null when not one this vouches for. */
  #counter (data: Buffer): number | null {
    this.#skipSpace(data)
    if (data[this.#at] !== QUOTE) return this.#integer(data)
    this.#at++
    const value = this.#digits(data)
    if (value === null || data[this.#at] !== QUOTE) return null
    this.#at++
    return value
  }

  /** A JSON integer without sign, fraction or exponent, and without the leading zero JSON forbids. */
  #integer (data: Buffer): number | null {
    const start = this.#at
    const value = this.#digits(data)
    if (value === null || (data[start] === ZERO && this.#at - start > 1)) return null
    return value
  }

  #digits (data: Buffer): number | null {
    const start = this.#at
    let value = 0
    for (let byte = data[this.#at]; byte >= ZERO && byte <= NINE; byte = data[++this.#at]) value = value * 10 + byte - ZERO
    const count = this.#at - start
    return count === 0 || count > MAX_DIGITS ? null : value
  }

  /** A value of a key the layout does not name: a string, an integer, true, false or null. */
  #simpleValue (data: Buffer): boolean {
    this.#skipSpace(data)
    const byte = data[this.#at]
    if (byte === QUOTE) return this.#string(data) >= 0
    if (byte >= ZERO && byte <= NINE) return this.#integer(data) !== null && isDelimiter(data[this.#at])
    for (const literal of LITERALS) {
      if (matches(data, this.#at, this.#at + literal.length, literal) && isDelimiter(data[this.#at + literal.length])) {
        this.#at += literal.length
        return true
      }
    }
    return false
  }

  /** A string without control characters (scan has ruled out escapes); returns where its characters start, or -1. */
  #string (data: Buffer): number {
    this.#skipSpace(data)
    if (data[this.#at] !== QUOTE) return -1
    const start = ++this.#at
    for (let byte = data[this.#at]; byte !== QUOTE; byte = data[++this.#at]) {
      // Undefined past the end: not a number, so this returns as well.
      if (!(byte >= 0x20)) return -1
    }
    this.#at++
    return start
  }

  #open (data: Buffer): boolean {
    this.#skipSpace(data)
    if (data[this.#at] !== OPEN) return false
    this.#at++
    return true
  }

  /** True at the object's `}`; otherwise reads the comma before a key (none before the first). */
  #closes (data: Buffer, first: boolean): boolean {
    this.#skipSpace(data)
    const byte = data[this.#at]
    if (byte === CLOSE) {
      this.#at++
      return true
    }
    if (first) return false
    if (byte !== COMMA) {
      // Neither: make the next read fail.
      this.#at = data.length
      return false
    }
    this.#at++
    return false
  }

  #colon (data: Buffer): boolean {
    this.#skipSpace(data)
    if (data[this.#at] !== COLON) return false
    this.#at++
    return true
  }

  #skipSpace (data: Buffer): void {
    for (let byte = data[this.#at]; byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09; byte = data[++this.#at]);
  }
}

const LITERALS = [Buffer.from('true'), Buffer.from('false'), Buffer.from('null')]

/** What may follow a bare value: whitespace, a comma or a closing brace (or the end, which the caller refuses). */
function isDelimiter (byte: number | undefined): boolean {
  return byte === COMMA || byte === CLOSE || byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09
}

function matches (data: Buffer, start: number, end: number, expected: Buffer): boolean {
  if (end - start !== expected.length) return false
  for (let i = 0; i < expected.length; i++) if (data[start + i] !== expected[i]) return false
  return true
}

function ruleOf (keys: Key[], data: Buffer, start: number, end: number): number {
  for (const key of keys) if (matches(data, start, end, key.bytes)) return key.rule
  return -1
}
