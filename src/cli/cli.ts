import { parseArgs, type ParseArgsConfig } from 'node:util'
import { ConfigError } from '../core-config.js'

/**
 * Bad arguments: the tool exits 2, with its usage text after the message unless `usage` is false (a value that
 * is well formed but cannot be used, where the usage would bury the one line that matters).
 */
export class UsageError extends Error {
  override name = 'UsageError'
  readonly usage: boolean

  constructor (message: string, { usage = true }: { usage?: boolean } = {}) {
    super(message)
    this.usage = usage
  }
}

type Options = NonNullable<ParseArgsConfig['options']>

/** node:util parseArgs, with unknown or malformed options turned into UsageError. */
export function parseOptions<T extends Options> (argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

export function integerOption (value: string | undefined, name: string, fallback: number, min = -Infinity): number {
  if (value === undefined) return fallback
  const number = Number(value)
  if (!Number.isInteger(number) || number < min) throw new UsageError(`--${name} must be an integer${Number.isFinite(min) ? ` of at least ${min}` : ''}, not "${value}"`)
  return number
}

/**
 * Runs a tool's main. Expected failures print one line and no stack: usage errors exit 2, configuration errors 78
 * (EX_CONFIG, as the gateway). Anything else is a bug and exits 1 with its stack.
 */
export async function runCli (name: string, usage: string, main: (argv: string[]) => Promise<number>): Promise<void> {
  try {
    process.exitCode = await main(process.argv.slice(2))
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(err.usage ? `${err.message}\n\n${usage}\n` : `${name}: ${err.message}\n`)
      process.exitCode = 2
      return
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`${name}: ${err.message}\n`)
      process.exitCode = 78
      return
    }
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
    process.exitCode = 1
  }
}
