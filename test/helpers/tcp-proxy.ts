import { once } from 'node:events'
import { connect, createServer, type Server, type Socket } from 'node:net'

/**
 * A TCP hop between the gateway and its redis-server, so a test can cut the gateway off (a network partition:
 * Redis itself stays up for the test's own subscriber) and then let it back in.
 */
export class TcpProxy {
  readonly port: number
  readonly #server: Server
  readonly sockets = new Set<Socket>()
  open = true

  private constructor (server: Server, port: number) {
    this.#server = server
    this.port = port
  }

  static async start (targetPort: number): Promise<TcpProxy> {
    let proxy: TcpProxy | null = null
    const server = createServer((client) => {
      const live = proxy
      if (live === null || !live.open) {
        client.destroy()
        return
      }
      const upstream = connect(targetPort, '127.0.0.1')
      for (const socket of [client, upstream]) {
        live.sockets.add(socket)
        socket.on('close', () => live.sockets.delete(socket))
        socket.on('error', () => socket.destroy())
      }
      client.pipe(upstream).pipe(client)
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    proxy = new TcpProxy(server, (server.address() as { port: number }).port)
    return proxy
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** Drops every connection through the proxy and refuses new ones. */
  cut (): void {
    this.open = false
    for (const socket of this.sockets) socket.destroy()
  }

  restore (): void {
    this.open = true
  }

  async close (): Promise<void> {
    this.cut()
    this.#server.close()
    await once(this.#server, 'close')
  }
}
