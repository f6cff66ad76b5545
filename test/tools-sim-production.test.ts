import t from 'tap'
import { TestRedis } from './helpers/redis-server.js'
import { selfSignedCertificate } from './helpers/tls.js'
import { isOneLine, startToolsGateway, tool } from './helpers/tools.js'

// rtaa-sim against a gateway process set up for production: TLS, and Twilio's signed upgrades.

const TWILIO_TOKEN = 'production-twilio-auth-token'

const redis = await TestRedis.start()
t.teardown(() => redis.stop())

t.test('rtaa-sim over wss: --ca trusts a self-signed certificate, --insecure skips the check with a warning', async (t) => {
  const dir = t.testdir()
  const { cert, key } = selfSignedCertificate(dir)
  const server = await startToolsGateway(t, redis.url, { TLS_CERT_FILE: cert, TLS_KEY_FILE: key })
  const url = `${server.wsUrl.replace(/^ws:/, 'wss:')}/v1/ingest`
  const args = ['--url', url, '--duration', '0.3']

  const untrusted = await tool('rtaa-sim', [...args, '--call-prefix', 'untrusted'], dir).done
  t.equal(untrusted.code, 1)
  t.match(JSON.parse(untrusted.stdout), { results: [{ ok: false, error: /self-signed certificate.*see --ca, --insecure/ }] })

  const trusted = await tool('rtaa-sim', [...args, '--ca', cert, '--call-prefix', 'trusted'], dir).done
  t.equal(trusted.code, 0, trusted.stderr)
  t.equal(trusted.stderr, '')

  const insecure = await tool('rtaa-sim', [...args, '--insecure', '--call-prefix', 'insecure'], dir).done
  t.equal(insecure.code, 0, insecure.stderr)
  t.match(insecure.stderr, /^rtaa-sim: warning: --insecure/)
  t.match(JSON.parse(insecure.stdout), { completed: 1 })

  const missing = await tool('rtaa-sim', [...args, '--ca', 'missing.pem'], dir).done
  t.equal(missing.code, 2)
  t.ok(isOneLine(missing.stderr), missing.stderr)
})

t.test('rtaa-sim signs Twilio upgrades with --twilio-auth-token or TWILIO_AUTH_TOKEN; unsigned, the gateway refuses', async (t) => {
  const dir = t.testdir()
  const server = await startToolsGateway(t, redis.url, { TWILIO_AUTH_TOKEN: TWILIO_TOKEN })
  const args = ['--vendor', 'twilio', '--url', `${server.wsUrl}/v1/ingest/twilio`, '--duration', '0.3']

  const signed = await tool('rtaa-sim', [...args, '--twilio-auth-token', TWILIO_TOKEN, '--call-prefix', 'signed'], dir).done
  t.equal(signed.code, 0, signed.stderr)
  t.match(JSON.parse(signed.stdout), { vendor: 'twilio', completed: 1 })

  const fromEnv = await tool('rtaa-sim', [...args, '--call-prefix', 'env'], dir, { TWILIO_AUTH_TOKEN: TWILIO_TOKEN }).done
  t.equal(fromEnv.code, 0, fromEnv.stderr)

  // Through /v1/ingest too: the signature is what makes the stream Twilio's there.
  const shared = await tool('rtaa-sim', ['--vendor', 'twilio', '--url', `${server.wsUrl}/v1/ingest`, '--duration', '0.3', '--twilio-auth-token', TWILIO_TOKEN], dir).done
  t.equal(shared.code, 0, shared.stderr)

  const unsigned = await tool('rtaa-sim', [...args, '--call-prefix', 'unsigned'], dir).done
  t.equal(unsigned.code, 1)
  t.match(JSON.parse(unsigned.stdout), { results: [{ ok: false, error: /^upgrade refused: HTTP 401/ }] })

  const wrong = await tool('rtaa-sim', [...args, '--twilio-auth-token', 'another-token-0123456789'], dir).done
  t.equal(wrong.code, 1)
  t.match(JSON.parse(wrong.stdout), { results: [{ error: /HTTP 401.*X-Twilio-Signature/ }] })
})
