#!/usr/bin/env node
// `npm start`'s build step: compiles to dist/ (tsconfig.build.json) only when a source is newer than the last build,
// so a restart does not pay for tsc (over 20 s on a loaded machine). `npm run build` always compiles.
//
// The last build is dist/.build-stamp, dated when that build began; its inputs are in newest-source.mjs. A source
// given an older date than the stamp (cp -p, tar, rsync -t) is not seen: run `npm run build`.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { newestSourceMs, root } from './newest-source.mjs'

const stamp = join(root, 'dist', '.build-stamp')
const entry = join(root, 'dist', 'src', 'server.js')
const sources = newestSourceMs()
const built = existsSync(stamp) && existsSync(entry) ? statSync(stamp).mtimeMs : -Infinity

if (built >= sources) {
  process.stderr.write('dist/ is up to date with the sources; not compiling (npm run build forces it)\n')
} else {
  const began = new Date()
  process.stderr.write('compiling to dist/ (tsc -p tsconfig.build.json)\n')
  const tsc = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' })
  if (tsc.status !== 0) process.exit(tsc.status ?? 1)
  mkdirSync(dirname(stamp), { recursive: true })
  writeFileSync(stamp, `${began.toISOString()}\n`)
  // Dated when the build began: a source saved while tsc ran is newer, and the next start compiles again.
  utimesSync(stamp, began, began)
}
