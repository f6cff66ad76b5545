import { readFileSync } from 'node:fs'
import { signJwt } from '../auth/jwt-sign.js'
import { loadSettings } from '../config.js'
import { ConfigError } from '../core-config.js'
import { UsageError, integerOption, parseOptions, runCli } from './cli.js'

const USAGE = `Usage: rtaa-token --tenant <id> [options]

Mints a JWT for the native protocol (docs/native-protocol.md), signed with JWT_SECRET (HS256) from the
environment, .env.local or .env, or with --private-key (RS256 for an RSA key, ES256 for a P-256 key). Only the JWT_*
settings are read. Exit status 0, 2 for bad arguments, 78 with no key or a bad JWT_* value.

  --tenant <id>          tenant_id claim (required)
  --expires-in <s>       seconds until exp, at most JWT_MAX_AGE_S (default 3600, or JWT_MAX_AGE_S if shorter;
                         --expires-in=-60 mints an expired token, for tests)
  --subject <sub>        sub claim
  --scope <scopes>       scope claim, space-separated: dashboard lets the token open the live call dashboard
                         (its tenant's calls only); a streaming token needs none
  --issuer <iss>         iss claim (default JWT_ISSUER)
  --audience <aud>       aud claim (default JWT_AUDIENCE)
  --private-key <file>   PEM private key instead of JWT_SECRET
  --help`

async function main (argv: string[]): Promise<number> {
  const args = parseOptions(argv, {
    tenant: { type: 'string' },
    'expires-in': { type: 'string' },
    subject: { type: 'string' },
    scope: { type: 'string' },
    issuer: { type: 'string' },
    audience: { type: 'string' },
    'private-key': { type: 'string' },
    help: { type: 'boolean' }
  })
  if (args.help === true) {
    process.stdout.write(`${USAGE}\n`)
    return 0
  }
  if (args.tenant === undefined || args.tenant === '') throw new UsageError('--tenant is required')
  // Only what a token needs: the gateway's other settings (SUPPORT_NATIVE, PORT…) are not this tool's to check.
  const config = loadSettings(['JWT_SECRET', 'JWT_ISSUER', 'JWT_AUDIENCE', 'JWT_MAX_AGE_S'])
  const key = args['private-key'] !== undefined ? readKey(args['private-key']) : config.JWT_SECRET
  if (key === undefined) throw new ConfigError('no key: set JWT_SECRET (or use --private-key)')
  // The gateway refuses a token whose exp lies further ahead than its JWT_MAX_AGE_S, read here from the same places.
  const expiresIn = integerOption(args['expires-in'], 'expires-in', Math.min(3600, config.JWT_MAX_AGE_S))
  if (expiresIn > config.JWT_MAX_AGE_S) {
    throw new UsageError(`--expires-in ${expiresIn} is beyond JWT_MAX_AGE_S (${config.JWT_MAX_AGE_S}): the gateway would refuse the token`)
  }
  const now = Math.floor(Date.now() / 1000)
  const claims: Record<string, unknown> = {
    tenant_id: args.tenant,
    iat: now,
    exp: now + expiresIn,
    ...(args.subject === undefined ? {} : { sub: args.subject }),
    ...(args.scope === undefined ? {} : { scope: args.scope })
  }
  const issuer = args.issuer ?? config.JWT_ISSUER
  const audience = args.audience ?? config.JWT_AUDIENCE
  if (issuer !== undefined) claims.iss = issuer
  if (audience !== undefined) claims.aud = audience
  let token
  try {
    token = signJwt(claims, key)
  } catch (err) {
    throw new UsageError(`--private-key: ${(err as Error).message}`, { usage: false })
  }
  process.stdout.write(`${token}\n`)
  return 0
}

function readKey (file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (err) {
    throw new UsageError(`--private-key ${file}: ${(err as Error).message}`, { usage: false })
  }
}

await runCli('rtaa-token', USAGE, main)
