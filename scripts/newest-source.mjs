// When the gateway's sources last changed: the newest date of every file and directory under src/, plugins/ and
// routes/ (a directory's date changes when a file in it is added, removed or renamed), the two tsconfig files and
// package-lock.json (a new TypeScript or @types). Both `npm start` and the bin/ launchers judge dist/ by it.
import { existsSync, readdirSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..')

function newest (path) {
  const stats = statSync(path)
  let latest = stats.mtimeMs
  if (stats.isDirectory()) {
    for (const name of readdirSync(path)) latest = Math.max(latest, newest(join(path, name)))
  }
  return latest
}

export function newestSourceMs () {
  return Math.max(...['src', 'plugins', 'routes', 'tsconfig.json', 'tsconfig.build.json', 'package-lock.json']
    .map((name) => join(root, name))
    .filter((path) => existsSync(path))
    .map(newest))
}
