import { Type } from '@sinclair/typebox'
import { defineVendor } from '../vendor.js'
import { EXOTEL_SAMPLE_RATES, createExotelAdapter } from './exotel-adapter.js'
import { exotelSimulator } from './exotel-simulator.js'

const ExotelConfig = Type.Object({
  SUPPORT_EXOTEL: Type.Boolean({ default: true }),
  /** The rate of a stream whose URL names none. */
  EXOTEL_DEFAULT_SAMPLE_RATE: Type.Unsafe<(typeof EXOTEL_SAMPLE_RATES)[number]>({ type: 'integer', enum: [...EXOTEL_SAMPLE_RATES], default: 8000 })
})

export const exotel = defineVendor({
  name: 'exotel',
  config: ExotelConfig,
  adapter: (config) => (config.SUPPORT_EXOTEL ? createExotelAdapter(config.EXOTEL_DEFAULT_SAMPLE_RATE) : null),
  simulator: exotelSimulator
})
