import type { Static, TObject } from '@sinclair/typebox'
import fp from 'fastify-plugin'
import type { CoreConfig } from '../src/core-config.js'
import type { Vendor } from '../src/vendors/vendor.js'
import type { VendorAdapter } from '../src/vendors/vendor-adapter.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The enabled vendors, in the list's order: each has its route, and /v1/ingest detects among them. */
    vendors: readonly VendorAdapter[]
  }
}

export interface VendorsOptions {
  vendors: readonly Vendor[]
}

/** Builds each listed vendor's adapter from the configuration; a vendor its SUPPORT_<NAME> turns off has none. */
export default fp<VendorsOptions>(async (fastify, { vendors }) => {
  const settings = fastify.config as Static<TObject> & CoreConfig
  const adapters = vendors.flatMap((vendor) => {
    const adapter = vendor.adapter(settings)
    if (adapter !== null && adapter.name !== vendor.name) throw new Error(`vendor ${vendor.name} built an adapter named ${adapter.name}`)
    return adapter === null ? [] : [adapter]
  })
  fastify.decorate('vendors', adapters)
}, { name: 'vendors', fastify: '5.x', decorators: { fastify: ['config'] } })
