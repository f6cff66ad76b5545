import { Type } from '@sinclair/typebox'
import { defineVendor } from '../vendor.js'
import { createNativeAdapter } from './native-adapter.js'
import { nativeSimulator } from './native-simulator.js'

const NativeConfig = Type.Object({
  /** Off until a JWT key is configured: the native protocol is admitted by JWT only. */
  SUPPORT_NATIVE: Type.Boolean({ default: false })
})

export const native = defineVendor({
  name: 'native',
  config: NativeConfig,
  check: (config) => (config.SUPPORT_NATIVE && config.JWT_SECRET === undefined && config.JWT_PUBLIC_KEY_FILE === undefined
    ? 'SUPPORT_NATIVE=true needs JWT_SECRET or JWT_PUBLIC_KEY_FILE'
    : null),
  adapter: (config) => (config.SUPPORT_NATIVE ? createNativeAdapter() : null),
  simulator: nativeSimulator
})
