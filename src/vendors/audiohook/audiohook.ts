import { Type } from '@sinclair/typebox'
import { defineVendor } from '../vendor.js'
import { createAudioHookAdapter } from './audiohook-adapter.js'
import { createAudioHookKeyMethod, parseAudioHookCredentials } from './audiohook-signature.js'
import { audioHookSimulator } from './audiohook-simulator.js'

const AudioHookConfig = Type.Object({
  /** On by default, but inert without AUDIOHOOK_CREDENTIALS: Genesys connects from its public cloud, never by address. */
  SUPPORT_AUDIOHOOK: Type.Boolean({ default: true }),
  /** `organizationId:apiKey[:clientSecret]`, comma-separated: each key is bound to its organization, the tenant. */
  AUDIOHOOK_CREDENTIALS: Type.Optional(Type.String({ minLength: 1 }))
})

function credentialsProblem (list: string | undefined): string | null {
  if (list === undefined) return null
  try {
    parseAudioHookCredentials(list)
    return null
  } catch (err) {
    return `env/AUDIOHOOK_CREDENTIALS ${(err as Error).message}`
  }
}

export const audiohook = defineVendor({
  name: 'audiohook',
  config: AudioHookConfig,
  check: (config) => credentialsProblem(config.AUDIOHOOK_CREDENTIALS),
  // Without credentials nothing could admit Genesys: the vendor stays off (its route a 404), whatever SUPPORT_AUDIOHOOK says.
  adapter: (config) => (config.SUPPORT_AUDIOHOOK && config.AUDIOHOOK_CREDENTIALS !== undefined
    ? createAudioHookAdapter({ keyMethod: createAudioHookKeyMethod(parseAudioHookCredentials(config.AUDIOHOOK_CREDENTIALS)) })
    : null),
  simulator: audioHookSimulator
})
