import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer, type Server } from 'node:net'

/** A redis-server of the test's own, on a free port; stop() and start() again keep the port. */
export class TestRedis {
  readonly port: number
  #process: ChildProcess | null = null

  private constructor (port: number) {
    this.port = port
  }

  static async start (): Promise<TestRedis> {
    const redis = new TestRedis(await freePort())
    await redis.start()
    return redis
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  async start (): Promise<void> {
    const child = spawn('redis-server', [
      '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'
    ], { stdio: ['ignore', 'pipe', 'inherit'] })
    this.#process = child
    let output = ''
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject)
      child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${output}`)))
      child.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString()
        if (output.includes('Ready to accept connections')) resolve()
      })
    })
    child.removeAllListeners('exit')
    child.stdout?.resume()
  }

  /** Freezes the server (SIGSTOP): connections stay up, nothing is answered, until resume(). */
  pause (): void {
    this.#process?.kill('SIGSTOP')
  }

  resume (): void {
    this.#process?.kill('SIGCONT')
  }

  async stop (): Promise<void> {
    const child = this.#process
    if (child === null || child.exitCode !== null) return
    this.#process = null
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  }
}

export async function freePort (): Promise<number> {
  const [port] = await freePorts(1)
  return port
}

/** `count` distinct free ports, all held at once so none is handed out twice. */
export async function freePorts (count: number): Promise<number[]> {
  const servers: Server[] = []
  try {
    const ports: number[] = []
    for (let i = 0; i < count; i++) {
      const server = createServer()
      servers.push(server)
      server.listen(0, '127.0.0.1')
      await once(server, 'listening')
      const address = server.address()
      if (address === null || typeof address === 'string') throw new Error('no port')
      ports.push(address.port)
    }
    return ports
  } finally {
    await Promise.all(servers.map(async (server) => {
      if (!server.listening) return
      server.close()
      await once(server, 'close')
    }))
  }
}
