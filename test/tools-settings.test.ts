import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { TestRedis } from './helpers/redis-server.js'
import { fileAppears, isOneLine, startRecorder, startToolsGateway, tool } from './helpers/tools.js'

// The tools read only the settings they use; rtaa-record says when it is subscribed.

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

t.test('rtaa-record reads only REDIS_URL and REDIS_PREFIX: a bad PORT does not stop it, a bad prefix exits 78 in one line', async (t) => {
  const dir = t.testdir()
  const server = await startToolsGateway(t, redis.url)
  writeFileSync(join(dir, '.env.local'), 'PORT=not-a-port\nTLS_CERT_FILE=/nowhere.pem\n')
  const record = await startRecorder(dir, redis.url, server.prefix, { PORT: 'also-not-a-port', SUPPORT_NATIVE: 'true' })
  const sim = await tool('rtaa-sim', ['--url', `${server.wsUrl}/v1/ingest`, '--duration', '0.3', '--call-prefix', 'badport'], dir).done
  t.equal(sim.code, 0, sim.stderr)
  const run = await record.done
  t.equal(run.code, 0, run.stderr)
  t.ok(existsSync(join(dir, 'recordings', 'ACsimulator', 'badport-1.wav')))

  const bad = await tool('rtaa-record', ['--calls', '1'], dir, { REDIS_PREFIX: 'no spaces{' }).done
  t.equal(bad.code, 78)
  t.match(bad.stderr, /^rtaa-record: invalid configuration: env\/REDIS_PREFIX /)
  t.ok(isOneLine(bad.stderr), bad.stderr)

  // It records pub/sub on one Redis: in a mode it cannot record it says so, rather than wait for calls forever.
  for (const [env, mode] of [[{ REDIS_TRANSPORT: 'streams' }, 'REDIS_TRANSPORT=streams'], [{ REDIS_CLUSTER_NODES: '127.0.0.1:7000' }, 'a Redis Cluster']] as const) {
    const refused = await tool('rtaa-record', ['--calls', '1'], dir, env).done
    t.equal(refused.code, 2, mode)
    t.match(refused.stderr, new RegExp(`^rtaa-record: records pub/sub on one Redis only, not ${mode}; read the streams directly`))
    t.ok(isOneLine(refused.stderr), refused.stderr)
  }
})

t.test('rtaa-token reads only the JWT settings: no key is one line and exit 78, not a stack trace', async (t) => {
  const dir = t.testdir()
  writeFileSync(join(dir, '.env.local'), 'PORT=not-a-port\n')
  const noKey = await tool('rtaa-token', ['--tenant', 'acme'], dir, { SUPPORT_NATIVE: 'true' }).done
  t.equal(noKey.code, 78)
  t.match(noKey.stderr, /^rtaa-token: no key: set JWT_SECRET/)
  t.ok(isOneLine(noKey.stderr), noKey.stderr)

  const minted = await tool('rtaa-token', ['--tenant', 'acme'], dir, { SUPPORT_NATIVE: 'true', JWT_SECRET: 'tools-test-secret-of-at-least-32-bytes' }).done
  t.equal(minted.code, 0, minted.stderr)
  t.match(minted.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/)
})

t.test('rtaa-record --ready-file: an old one is removed at start, the new one appears once subscribed and goes at exit', async (t) => {
  const dir = t.testdir()
  const server = await startToolsGateway(t, redis.url)
  const ready = join(dir, 'ready')
  writeFileSync(ready, 'left by an earlier run\n')
  const record = tool('rtaa-record', ['--calls', '1', '--ready-file', ready], dir, { REDIS_URL: redis.url, REDIS_PREFIX: server.prefix })
  const pid = await fileAppears(ready, (content) => content === `${record.child.pid}\n`)
  t.equal(pid, `${record.child.pid}\n`, 'the file names the recorder')
  await record.stderrHas('ready: subscribed to')
  // Started the moment the file appears, the call is recorded.
  const sim = await tool('rtaa-sim', ['--url', `${server.wsUrl}/v1/ingest`, '--duration', '0.2', '--call-prefix', 'ready'], dir).done
  t.equal(sim.code, 0, sim.stderr)
  t.equal((await record.done).code, 0)
  t.ok(existsSync(join(dir, 'recordings', 'ACsimulator', 'ready-1.wav')))
  t.notOk(existsSync(ready), 'gone once the recorder has exited')
})
