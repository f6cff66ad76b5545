import type { Static, TObject } from '@sinclair/typebox'
import type { CoreConfig } from '../core-config.js'
import type { VendorAdapter } from './vendor-adapter.js'
import type { VendorSimulator } from './vendor-simulator.js'

/**
 * A vendor as the gateway ships it: one folder under src/vendors/, listed in built-in-vendors.ts. It brings its
 * part of the configuration and builds its adapter from it; nothing outside its folder names it.
 */
export interface Vendor<Settings extends TObject = TObject> {
  /** Lower-case name: the route segment, the `vendor` field on Redis, the NAME in SUPPORT_<NAME>. */
  readonly name: string
  /** Its part of the configuration schema: SUPPORT_<NAME> and its own settings. */
  readonly config: Settings
  /** A problem that the schema alone cannot see (a setting it needs from the core), or null. */
  check? (config: Static<Settings> & CoreConfig): string | null
  /** Its adapter, or null when SUPPORT_<NAME> turns it off. */
  adapter (config: Static<Settings> & CoreConfig): VendorAdapter | null
  /** How rtaa-sim plays this vendor; without it, rtaa-sim does not offer it. */
  readonly simulator?: VendorSimulator
}

/** Keeps a vendor's settings type, so `check` and `adapter` see its own variables typed. */
export function defineVendor<Settings extends TObject> (vendor: Vendor<Settings>): Vendor<Settings> {
  return vendor
}
