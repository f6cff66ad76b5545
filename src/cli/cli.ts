import { parseArgs, type ParseArgsConfig } from 'node:util'

/** Bad arguments: the tool prints its usage and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError'
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

/** Runs a tool's main: usage errors exit 2 with the usage text, other failures exit 1. */
export async function runCli (usage: string, main: (argv: string[]) => Promise<number>): Promise<void> {
  try {
    process.exitCode = await main(process.argv.slice(2))
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n\n${usage}\n`)
      process.exitCode = 2
      return
    }
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
    process.exitCode = 1
  }
}
