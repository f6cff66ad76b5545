import { Type } from '@sinclair/typebox'
import { accountListProblem, parseAccountList } from '../../auth/tenancy.js'
import { defineVendor } from '../vendor.js'
import { EXOTEL_SAMPLE_RATES, createExotelAdapter } from './exotel-adapter.js'
import { exotelSimulator } from './exotel-simulator.js'

const ExotelConfig = Type.Object({
  SUPPORT_EXOTEL: Type.Boolean({ default: true }),
  /** The rate of a stream whose URL names none. */
  EXOTEL_DEFAULT_SAMPLE_RATE: Type.Unsafe<(typeof EXOTEL_SAMPLE_RATES)[number]>({ type: 'integer', enum: [...EXOTEL_SAMPLE_RATES], default: 8000 }),
  /** Comma-separated account_sids that streams admitted by the IP allowlist may name; empty: any. */
  EXOTEL_ACCOUNT_SIDS: Type.String({ default: '' })
})

export const exotel = defineVendor({
  name: 'exotel',
  config: ExotelConfig,
  check: (config) => accountListProblem('EXOTEL_ACCOUNT_SIDS', config.EXOTEL_ACCOUNT_SIDS),
  adapter: (config) => (config.SUPPORT_EXOTEL ? createExotelAdapter(config.EXOTEL_DEFAULT_SAMPLE_RATE, parseAccountList(config.EXOTEL_ACCOUNT_SIDS)) : null),
  simulator: exotelSimulator
})
