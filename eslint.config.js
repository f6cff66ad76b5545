import neostandard from 'neostandard'

/**
 * Dependencies run one way (docs/architecture.md): routes → plugins → dashboard → calls → {vendors, bus} → audio, auth.
 * Each entry lists every layer its files may not import; only src/app.ts, which builds the app, sees them all.
 */
const layers = {
  'plugins/**': ['routes'],
  'src/cli/**': ['plugins', 'routes'],
  'src/dashboard/**': ['plugins', 'routes', 'cli', 'vendors'],
  'src/calls/**': ['plugins', 'routes', 'cli', 'dashboard'],
  'src/config.ts': ['plugins', 'routes', 'cli', 'dashboard', 'calls', 'bus'],
  'src/vendors/**': ['plugins', 'routes', 'cli', 'dashboard', 'calls', 'bus'],
  'src/bus/**': ['plugins', 'routes', 'cli', 'dashboard', 'calls', 'vendors'],
  'src/{audio,auth}/**': ['plugins', 'routes', 'cli', 'dashboard', 'calls', 'bus', 'vendors'],
  'src/{cluster-nodes,core-config,json-object,logger,metrics,track}.ts': ['plugins', 'routes', 'cli', 'dashboard', 'calls', 'bus', 'vendors'],
  'src/{process-group,worker-link,group-messages,group-dashboard}.ts': ['plugins', 'routes', 'cli', 'vendors']
}

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'bench/results/**', 'coverage/**'] }),
  ...Object.entries(layers).map(([files, above]) => ({
    files: [files],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: above.map((layer) => ({ group: [`**/${layer}/**`], message: `${files} may not import ${layer}/: dependencies run one way (docs/architecture.md)` }))
      }]
    }
  }))
]
