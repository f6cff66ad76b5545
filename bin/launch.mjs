// Runs a tool from dist/ when the project is built and dist/ is newer than the sources, else from its TypeScript
// source through tsx (a dev dependency), so `npx rtaa-sim` works in a fresh checkout after `npm ci`, and never runs
// a stale build after an edit.
import { existsSync, statSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { newestSourceMs } from '../scripts/newest-source.mjs'

export async function launch (name) {
  const built = fileURLToPath(new URL(`../dist/src/cli/${name}.js`, import.meta.url))
  if (existsSync(built) && statSync(built).mtimeMs >= newestSourceMs()) return import(pathToFileURL(built).href)
  const { register } = await import('tsx/esm/api')
  register()
  return import(new URL(`../src/cli/${name}.ts`, import.meta.url).href)
}
