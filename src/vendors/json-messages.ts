import type { Static, TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { AudioDecodeError } from '../audio/pcm.js'
import { parseJsonObject } from '../json-object.js'
import type { InboundEvent } from './inbound-event.js'
import { CloseCode, ProtocolError } from './protocol-error.js'
import type { DecodedMessage } from './vendor-adapter.js'

type Schemas = Readonly<Record<string, TSchema>>

/** For each event a vendor's schemas name, how a message that passed its schema becomes a normalized event. */
export type EventMapping<S extends Schemas> = { readonly [E in keyof S]: (message: Static<S[E]>) => InboundEvent }

const refuseMessage = (problem: string): Error => new ProtocolError(CloseCode.INVALID_PAYLOAD, `message ${problem}`)

/** Parses one text message, which must be a JSON object; anything else is invalid payload (1007). */
export function parseMessage (text: string): Record<string, unknown> {
  return parseJsonObject(text, refuseMessage)
}

/**
 * Decoding for vendors whose messages are JSON objects with an `event` field: parse, pick the schema by event,
 * check it, then map it. An event without a schema passes as `unknown`; binary frames are refused with 1003.
 */
export function createJsonEventDecoder<S extends Schemas> (vendor: string, schemas: S, mapping: EventMapping<S>):
(data: Buffer, isBinary: boolean, withUnknownFields: boolean) => DecodedMessage {
  const checkers = compileSchemas(schemas)
  const events = new Map(Object.keys(schemas).map((event) => [event, { checker: checkers.get(event) as TypeCheck<TSchema>, map: mapping[event] }]))
  return (data, isBinary, withUnknownFields) => {
    if (isBinary) throw new ProtocolError(CloseCode.UNSUPPORTED_DATA, `binary frames are not part of the ${vendor} protocol`)
    const message = parseJsonObject(data.toString(), refuseMessage)
    const event = message.event
    if (typeof event !== 'string') throw new ProtocolError(CloseCode.INVALID_PAYLOAD, 'message has no string "event" field')
    const known = events.get(event)
    if (known === undefined) return { event: { kind: 'unknown', event } }
    checkShape(event, known.checker, message)
    const decoded: DecodedMessage = { event: known.map(message as never) }
    if (withUnknownFields) decoded.unknownFields = unknownFields(schemas[event], message)
    return decoded
  }
}

const compiled = new WeakMap<Schemas, Map<string, TypeCheck<TSchema>>>()

/** Compiled once per schema record, however many connections decode with it. */
function compileSchemas (schemas: Schemas): Map<string, TypeCheck<TSchema>> {
  let checkers = compiled.get(schemas)
  if (checkers === undefined) {
    checkers = new Map(Object.entries(schemas).map(([event, schema]) => [event, TypeCompiler.Compile(schema)]))
    compiled.set(schemas, checkers)
  }
  return checkers
}

function checkShape (event: string, checker: TypeCheck<TSchema>, message: unknown): void {
  if (checker.Check(message)) return
  const error = checker.Errors(message).First()
  const where = error === undefined || error.path === '' ? '' : ` at ${error.path}`
  throw new ProtocolError(CloseCode.INVALID_PAYLOAD, `invalid ${event} message${where}: ${error?.message ?? 'does not match the schema'}`)
}

/** Field paths a message carries that its schema does not name; for debug logs only. */
function unknownFields (schema: TSchema, value: unknown, path = ''): string[] {
  const properties = (schema as { properties?: Record<string, TSchema> }).properties
  if (properties === undefined || typeof value !== 'object' || value === null) return []
  const found: string[] = []
  for (const [key, child] of Object.entries(value)) {
    const childSchema = properties[key]
    if (childSchema === undefined) found.push(`${path}/${key}`)
    else found.push(...unknownFields(childSchema, child, `${path}/${key}`))
  }
  return found
}

/** Runs an audio decoding step, turning its refusal into one the client can read (1007). */
export function decodeAudio<T> (decode: () => T): T {
  try {
    return decode()
  } catch (err) {
    if (err instanceof AudioDecodeError) throw new ProtocolError(CloseCode.INVALID_PAYLOAD, err.message)
    throw err
  }
}

/** Vendors send counters as numbers or numeric strings (already checked by the schema). */
export function toCounter (value: number | string | undefined): number | null {
  return value === undefined ? null : Number(value)
}
