/**
 * `npm start` compiles only when a source is newer than dist/ (scripts/build-if-stale.mjs). Run against a copy of
 * the script in a tiny project of its own, so the test costs a small tsc run, not the gateway's.
 */
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const repo = fileURLToPath(new URL('..', import.meta.url))

t.test('npm start\'s build step compiles once, then only after a source changes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rtaa-build-if-stale-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  mkdirSync(join(dir, 'scripts'))
  mkdirSync(join(dir, 'src'))
  for (const script of ['build-if-stale.mjs', 'newest-source.mjs']) copyFileSync(join(repo, 'scripts', script), join(dir, 'scripts', script))
  symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'))
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    // Only lib.es5.d.ts, unchecked: each compile is quick.
    compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', rootDir: '.', outDir: 'dist', types: [], lib: ['es5'], skipLibCheck: true },
    include: ['src']
  }))
  writeFileSync(join(dir, 'tsconfig.build.json'), JSON.stringify({ extends: './tsconfig.json', include: ['src'] }))
  writeFileSync(join(dir, 'src', 'server.ts'), 'export const version: number = 1\n')
  writeFileSync(join(dir, 'src', 'extra.ts'), 'export const extra: number = 2\n')

  const build = (): string => {
    const run = spawnSync(process.execPath, [join(dir, 'scripts', 'build-if-stale.mjs')], { cwd: dir, encoding: 'utf8' })
    t.equal(run.status, 0, `the script exits 0: ${run.stderr}${run.stdout}`)
    return run.stderr
  }
  const builtAt = (): number => statSync(join(dir, 'dist', 'src', 'server.js')).mtimeMs

  t.match(build(), /compiling to dist/, 'no dist/: it compiles')
  const first = builtAt()
  // A second and a third start leave dist/ untouched: tsc never runs.
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.match(build(), /dist\/ is up to date/, 'nothing changed: no compile')
  t.match(build(), /dist\/ is up to date/, 'still nothing changed: no compile')
  t.equal(builtAt(), first, 'dist/src/server.js was not written again')

  // An edited source compiles again. The last build is dated back ten seconds first, as if the edit came well after
  // it (within one test, the file system's time resolution could give both the same date).
  const earlier = new Date(Date.now() - 10_000)
  utimesSync(join(dir, 'dist', '.build-stamp'), earlier, earlier)
  writeFileSync(join(dir, 'src', 'server.ts'), 'export const version: number = 2\n')
  t.match(build(), /compiling to dist/, 'an edited source: it compiles')
  t.not(builtAt(), first, 'dist/src/server.js was written again')
  t.match(build(), /dist\/ is up to date/, 'and then not again')

  // A removed source changes its directory's date.
  utimesSync(join(dir, 'dist', '.build-stamp'), earlier, earlier)
  rmSync(join(dir, 'src', 'extra.ts'))
  t.match(build(), /compiling to dist/, 'a removed source: it compiles')

  // No dist/src/server.js (dist/ cleaned but the stamp kept, or the other way round): it compiles.
  rmSync(join(dir, 'dist', 'src', 'server.js'))
  t.match(build(), /compiling to dist/, 'a missing dist/src/server.js: it compiles')
})
