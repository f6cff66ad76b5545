// Runs a tool from dist/ when the project is built, else from its TypeScript source through tsx (a dev
// dependency), so `npx rtaa-sim` works in a fresh checkout after `npm ci`.
import { existsSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'

export async function launch (name) {
  const built = fileURLToPath(new URL(`../dist/src/cli/${name}.js`, import.meta.url))
  if (existsSync(built)) return import(pathToFileURL(built).href)
  const { register } = await import('tsx/esm/api')
  register()
  return import(new URL(`../src/cli/${name}.ts`, import.meta.url).href)
}
