import t from 'tap'
import { loadConfig } from '../src/config.js'

const load = (env: Record<string, string>): ReturnType<typeof loadConfig> => loadConfig({ env, dotenvFiles: [] })

t.test('defaults: loopback-only allowlist, no Basic credentials, Exotel on', async (t) => {
  t.same(load({}), {
    PORT: 8443,
    HOST: '0.0.0.0',
    REDIS_URL: 'redis://127.0.0.1:6379',
    REDIS_PREFIX: 'rtaa:',
    REDIS_BUFFER_MAX_BYTES: 67108864,
    REDIS_BUFFER_MAX_EVENTS_PER_CALL: 100,
    REDIS_STALL_TIMEOUT_MS: 2000,
    REDIS_TRANSPORT: 'pubsub',
    REDIS_STREAM_MAXLEN: 15000,
    REDIS_STREAM_TTL_S: 600,
    REDIS_EVENTS_MAXLEN: 100000,
    WORKERS: '1',
    SUPPORT_EXOTEL: true,
    EXOTEL_DEFAULT_SAMPLE_RATE: 8000,
    SUPPORT_TWILIO: true,
    SUPPORT_NATIVE: false,
    SUPPORT_PLIVO: true,
    SUPPORT_TELNYX: true,
    TELNYX_ACCOUNT_SIDS: '',
    TELNYX_PLAYBACK_CODEC: 'PCMU',
    TELNYX_PLAYBACK_SAMPLE_RATE: 8000,
    JWT_MAX_AGE_S: 86400,
    AUTH_IP_ALLOWLIST: '127.0.0.0/8,::1/128',
    TRUST_PROXY: '',
    BASIC_AUTH_CREDENTIALS: '',
    BASIC_AUTH_ACCOUNTS: '',
    EXOTEL_ACCOUNT_SIDS: '',
    TWILIO_ACCOUNT_SIDS: '',
    SUPPORT_VONAGE: true,
    VONAGE_ACCOUNT_SIDS: '',
    // On, but inert until AUDIOHOOK_CREDENTIALS is set.
    SUPPORT_AUDIOHOOK: true,
    PLIVO_ACCOUNT_SIDS: '',
    CALL_CLAIM_TTL_MS: 30000,
    WS_PING_INTERVAL_MS: 30000,
    WS_PONG_TIMEOUT_MS: 10000,
    IDLE_TIMEOUT_MS: 60000,
    START_TIMEOUT_MS: 10000,
    INBOUND_MAX_AUDIO_SPEED: 4,
    INBOUND_MAX_MESSAGES_PER_S: 250,
    DRAIN_TIMEOUT_MS: 600000,
    MAX_CONCURRENT_CALLS: 120,
    EVENT_LOOP_DELAY_LIMIT_MS: 200,
    METRICS_ALLOWLIST: '127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7',
    METRICS_TENANT_LABEL: false,
    DASHBOARD_ENABLED: true,
    DASHBOARD_ALLOWLIST: '127.0.0.0/8,::1/128',
    DASHBOARD_BASIC_CREDENTIALS: '',
    DASHBOARD_LISTEN: false,
    DASHBOARD_MAX_VIEWERS: 10,
    PLAYBACK_LEAD_MS: 400,
    PLAYBACK_MAX_BUFFER_MS: 60000,
    PLAYBACK_MAX_MESSAGE_BYTES: 2097152,
    PLAYBACK_MAX_TOTAL_BYTES: 134217728,
    LOG_LEVEL: 'info',
    MAX_MESSAGE_BYTES: 65536
  }, 'ADMIN_PORT and ADMIN_HOST are unset: no admin port')
})

t.test('values from the environment are coerced', async (t) => {
  t.match(load({ TELNYX_PLAYBACK_CODEC: 'L16', TELNYX_PLAYBACK_SAMPLE_RATE: '16000', SUPPORT_TELNYX: 'false' }),
    { TELNYX_PLAYBACK_CODEC: 'L16', TELNYX_PLAYBACK_SAMPLE_RATE: 16000, SUPPORT_TELNYX: false })
  t.match(load({ PORT: '9000', SUPPORT_EXOTEL: 'false', EXOTEL_DEFAULT_SAMPLE_RATE: '24000', MAX_MESSAGE_BYTES: '4096', ADMIN_PORT: '8080' }),
    { PORT: 9000, SUPPORT_EXOTEL: false, EXOTEL_DEFAULT_SAMPLE_RATE: 24000, MAX_MESSAGE_BYTES: 4096, ADMIN_PORT: 8080 })
})

t.test('a bad value is refused with a message naming the variable', async (t) => {
  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ PORT: 'http' }, /PORT/],
    [{ PORT: '70000' }, /PORT/],
    [{ ADMIN_PORT: '0' }, /env\/ADMIN_PORT must be >= 1/],
    [{ ADMIN_PORT: 'admin' }, /env\/ADMIN_PORT must be integer/],
    [{ ADMIN_HOST: '' }, /env\/ADMIN_HOST/],
    [{ EXOTEL_DEFAULT_SAMPLE_RATE: '44100' }, /EXOTEL_DEFAULT_SAMPLE_RATE must be equal to one of the allowed values \(8000, 16000, 24000\)/],
    [{ SUPPORT_EXOTEL: 'maybe' }, /SUPPORT_EXOTEL/],
    [{ REDIS_URL: 'http://localhost' }, /REDIS_URL/],
    [{ REDIS_PREFIX: 'rtaa*' }, /REDIS_PREFIX/],
    [{ LOG_LEVEL: 'verbose' }, /env\/LOG_LEVEL must be equal to one of the allowed values \(fatal, error, warn, info, debug, trace, silent\)$/],
    [{ MAX_MESSAGE_BYTES: '10' }, /MAX_MESSAGE_BYTES/],
    [{ AUTH_IP_ALLOWLIST: '10.0.0.0/8,10.0.0.300/8' }, /AUTH_IP_ALLOWLIST has "10\.0\.0\.300\/8", which is not a CIDR/],
    [{ AUTH_IP_ALLOWLIST: '127.0.0.1' }, /AUTH_IP_ALLOWLIST has "127\.0\.0\.1"/],
    [{ TRUST_PROXY: 'fd00::/200' }, /TRUST_PROXY/],
    [{ BASIC_AUTH_CREDENTIALS: 'key:token,justakey' }, /BASIC_AUTH_CREDENTIALS entry 2 is not of the form key:token/],
    [{ TLS_CERT_FILE: '/etc/cert.pem' }, /TLS_CERT_FILE and TLS_KEY_FILE must be set together/],
    [{ TLS_KEY_FILE: '/etc/key.pem' }, /TLS_CERT_FILE and TLS_KEY_FILE must be set together/],
    [{ JWT_SECRET: 'too-short' }, /JWT_SECRET must NOT have fewer than 32 characters/],
    [{ JWT_SECRET: 'x'.repeat(32), JWT_PUBLIC_KEY_FILE: '/etc/jwt.pem' }, /set JWT_SECRET \(HS256\) or JWT_PUBLIC_KEY_FILE \(RS256, ES256\), not both/],
    [{ SUPPORT_NATIVE: 'true' }, /SUPPORT_NATIVE=true needs JWT_SECRET or JWT_PUBLIC_KEY_FILE/],
    [{ TWILIO_AUTH_TOKEN: 'short' }, /TWILIO_AUTH_TOKEN/],
    [{ BASIC_AUTH_CREDENTIALS: 'k1:t1,k2:t2', BASIC_AUTH_ACCOUNTS: 'k1=AC1' }, /BASIC_AUTH_ACCOUNTS has no entry for key "k2": list the accounts it may stream for, or \* for any/],
    [{ BASIC_AUTH_CREDENTIALS: 'k1:t1', BASIC_AUTH_ACCOUNTS: 'k1=AC1,k9=AC2' }, /BASIC_AUTH_ACCOUNTS names key "k9", which BASIC_AUTH_CREDENTIALS does not have/],
    [{ BASIC_AUTH_CREDENTIALS: 'k1:t1', BASIC_AUTH_ACCOUNTS: 'k1=AC:1' }, /BASIC_AUTH_ACCOUNTS entry for key "k1" has "AC:1", which is not an account id/],
    [{ BASIC_AUTH_CREDENTIALS: 'k1:t1', BASIC_AUTH_ACCOUNTS: 'AC1' }, /BASIC_AUTH_ACCOUNTS entry "AC1" is not of the form key=account\|account or key=\*/],
    [{ BASIC_AUTH_CREDENTIALS: 'k1:t1', BASIC_AUTH_ACCOUNTS: 'k1=AC1,k1=*' }, /BASIC_AUTH_ACCOUNTS names key "k1" twice/],
    [{ EXOTEL_ACCOUNT_SIDS: '*' }, /EXOTEL_ACCOUNT_SIDS has "\*", which is not an account id/],
    [{ REDIS_PREFIX: 'rtaa{x}:' }, /REDIS_PREFIX/],
    [{ EXOTEL_ACCOUNT_SIDS: 'AC1,{AC2}' }, /EXOTEL_ACCOUNT_SIDS has "\{AC2\}", which is not an account id/],
    [{ TWILIO_ACCOUNT_SIDS: '_AC1' }, /TWILIO_ACCOUNT_SIDS has "_AC1"/],
    [{ TWILIO_ACCOUNT_SID: 'AC 1' }, /TWILIO_ACCOUNT_SID must match pattern/],
    [{ VONAGE_ACCOUNT_SIDS: 'a1b2c3d4,:x' }, /VONAGE_ACCOUNT_SIDS has ":x", which is not an account id/],
    [{ VONAGE_SIGNATURE_SECRET: 'vonage-signature-secret-0123456789' }, /VONAGE_SIGNATURE_SECRET and VONAGE_API_KEY must be set together/],
    [{ VONAGE_API_KEY: 'a 1' }, /VONAGE_API_KEY must match pattern/],
    [{ CALL_CLAIM_TTL_MS: '500' }, /CALL_CLAIM_TTL_MS must be >= 1000/],
    [{ REDIS_TRANSPORT: 'kafka' }, /REDIS_TRANSPORT must be equal to one of the allowed values \(pubsub, streams\)/],
    [{ REDIS_CLUSTER_NODES: '10.0.0.1:6379,10.0.0.2' }, /REDIS_CLUSTER_NODES must be host:port entries, separated by commas \(bad: "10.0.0.2"\)/],
    [{ REDIS_CLUSTER_NODES: 'redis:70000' }, /REDIS_CLUSTER_NODES must be host:port entries/],
    [{ REDIS_CLUSTER_NODES: ' , ' }, /REDIS_CLUSTER_NODES must name at least one host:port/],
    [{ REDIS_STREAM_MAXLEN: '10' }, /REDIS_STREAM_MAXLEN must be >= 100/],
    [{ DASHBOARD_ALLOWLIST: '10.0.0.0/8,everyone' }, /DASHBOARD_ALLOWLIST/],
    [{ DASHBOARD_BASIC_CREDENTIALS: 'ops' }, /DASHBOARD_BASIC_CREDENTIALS.*key:token/],
    [{ DASHBOARD_LISTEN: 'yes please' }, /DASHBOARD_LISTEN/],
    [{ DASHBOARD_MAX_VIEWERS: '0' }, /DASHBOARD_MAX_VIEWERS must be >= 1/],
    [{ WORKERS: '0' }, /WORKERS must match pattern/],
    [{ WORKERS: 'all' }, /WORKERS must match pattern/],
    [{ SUPPORT_TELNYX: 'maybe' }, /SUPPORT_TELNYX/],
    [{ TELNYX_STREAM_AUTH_TOKEN: 'short' }, /TELNYX_STREAM_AUTH_TOKEN must NOT have fewer than 16 characters/],
    [{ TELNYX_USER_ID: 'user:1' }, /TELNYX_USER_ID must match pattern/],
    [{ TELNYX_ACCOUNT_SIDS: 'u1,{u2}' }, /TELNYX_ACCOUNT_SIDS has "\{u2\}", which is not an account id/],
    [{ TELNYX_PLAYBACK_CODEC: 'OPUS' }, /TELNYX_PLAYBACK_CODEC must be equal to one of the allowed values \(PCMU, PCMA, L16\)/],
    [{ TELNYX_PLAYBACK_SAMPLE_RATE: '24000' }, /TELNYX_PLAYBACK_SAMPLE_RATE must be equal to one of the allowed values \(8000, 16000\)/],
    [{ TELNYX_PLAYBACK_SAMPLE_RATE: '16000' }, /TELNYX_PLAYBACK_CODEC=PCMU plays at 8000 Hz only; TELNYX_PLAYBACK_SAMPLE_RATE is 16000/]
  ]
  for (const [env, message] of bad) {
    t.throws(() => load(env), { name: 'ConfigError', message }, JSON.stringify(env))
  }
})

t.test('a bad credential list never echoes a token', async (t) => {
  const err = t.throws(() => load({ BASIC_AUTH_CREDENTIALS: 'key:topsecret,:orphan-token' }), { message: /BASIC_AUTH_CREDENTIALS entry 2/ })
  t.notMatch(String(err), /topsecret|orphan-token/)
})

t.test('IPv6 CIDRs and surrounding spaces are accepted', async (t) => {
  t.match(load({ AUTH_IP_ALLOWLIST: ' 10.0.0.0/8 , 2001:db8::/32 ', TRUST_PROXY: '::1/128' }), { AUTH_IP_ALLOWLIST: ' 10.0.0.0/8 , 2001:db8::/32 ' })
})
