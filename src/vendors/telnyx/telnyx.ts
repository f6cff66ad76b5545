import { Type } from '@sinclair/typebox'
import { TENANT_ID_PATTERN, accountListProblem, parseAccountList } from '../../auth/tenancy.js'
import { defineVendor } from '../vendor.js'
import { TELNYX_PLAYBACK_CODECS, TELNYX_PLAYBACK_RATES, createTelnyxAdapter, type TelnyxCodec } from './telnyx-adapter.js'
import { telnyxSimulator } from './telnyx-simulator.js'

const TelnyxConfig = Type.Object({
  SUPPORT_TELNYX: Type.Boolean({ default: true }),
  /** With it, Telnyx connections are admitted by x-telnyx-streaming-auth-token; without it, by the IP allowlist. */
  TELNYX_STREAM_AUTH_TOKEN: Type.Optional(Type.String({ minLength: 16, maxLength: 4000 })),
  /** The account (user_id) TELNYX_STREAM_AUTH_TOKEN belongs to: a stream it admits must name it. */
  TELNYX_USER_ID: Type.Optional(Type.String({ pattern: TENANT_ID_PATTERN })),
  /** Comma-separated user_ids that streams admitted by the IP allowlist may name; empty: any. */
  TELNYX_ACCOUNT_SIDS: Type.String({ default: '' }),
  /** The stream's stream_bidirectional_codec, which the gateway cannot see: the codec it plays in. */
  TELNYX_PLAYBACK_CODEC: Type.Unsafe<TelnyxCodec>({ type: 'string', enum: TELNYX_PLAYBACK_CODECS, default: 'PCMU' }),
  /** The stream's stream_bidirectional_sampling_rate. */
  TELNYX_PLAYBACK_SAMPLE_RATE: Type.Unsafe<(typeof TELNYX_PLAYBACK_RATES)[number]>({ type: 'integer', enum: [...TELNYX_PLAYBACK_RATES], default: 8000 })
})

export const telnyx = defineVendor({
  name: 'telnyx',
  config: TelnyxConfig,
  check: (config) => accountListProblem('TELNYX_ACCOUNT_SIDS', config.TELNYX_ACCOUNT_SIDS) ??
    (config.TELNYX_PLAYBACK_CODEC !== 'L16' && config.TELNYX_PLAYBACK_SAMPLE_RATE !== 8000
      ? `TELNYX_PLAYBACK_CODEC=${config.TELNYX_PLAYBACK_CODEC} plays at 8000 Hz only; TELNYX_PLAYBACK_SAMPLE_RATE is ${config.TELNYX_PLAYBACK_SAMPLE_RATE}`
      : null),
  adapter: (config) => (config.SUPPORT_TELNYX
    ? createTelnyxAdapter({
      token: config.TELNYX_STREAM_AUTH_TOKEN,
      userId: config.TELNYX_USER_ID,
      ipAccounts: parseAccountList(config.TELNYX_ACCOUNT_SIDS),
      playback: { codec: config.TELNYX_PLAYBACK_CODEC, sampleRate: config.TELNYX_PLAYBACK_SAMPLE_RATE }
    })
    : null),
  simulator: telnyxSimulator
})
