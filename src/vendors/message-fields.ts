import { Type } from '@sinclair/typebox'
import { TENANT_ID_PATTERN } from '../auth/tenancy.js'

/** Sequence numbers, chunks and timestamps: vendors send numbers or numeric strings, sometimes both in one doc. */
export const Counter = Type.Union([Type.Integer({ minimum: 0 }), Type.String({ pattern: '^[0-9]{1,15}$' })])

/** A call id becomes a Redis channel name (interaction_id), so it is held to characters that are safe there. */
export const CallId = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._:@+-]+$' })

/** An account id a start names becomes the call's tenant, part of Redis names, so it is held to their characters. */
export const AccountId = Type.String({ pattern: TENANT_ID_PATTERN })

/** A track as the vendors that send both legs name it (Twilio, Plivo, Telnyx): `inbound` the caller's, `outbound` the other. */
export const TrackName = Type.Union([Type.Literal('inbound'), Type.Literal('outbound')])

/** The tracks a start announces: one, or both. */
export const TrackNames = Type.Array(TrackName, { minItems: 1, maxItems: 2, uniqueItems: true })
