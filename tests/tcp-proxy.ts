import type { Socket, TCPSocketListener } from 'bun'
import { freePort } from './helpers'

type Side = { peer?: Socket<Side>; pending: Uint8Array[] }

/**
 * A TCP proxy on loopback to `targetPort`, for tests that cut one process off from a server
 * (a network partition) while others still reach it: `cut()` drops every connection and refuses
 * new ones, `heal()` accepts them again on the same port.
 */
export function tcpProxy(targetPort: number) {
  const port = freePort()
  const open = new Set<Socket<Side>>()
  let listener: TCPSocketListener<Side> | undefined
  const forward = (to: Side['peer'], chunk: Uint8Array, side: Side) => (to ? to.write(chunk) : side.pending.push(chunk))
  const proxy = {
    port,
    heal() {
      listener = Bun.listen<Side>({
        hostname: '127.0.0.1',
        port,
        socket: {
          async open(client) {
            client.data = { pending: [] }
            open.add(client)
            try {
              const upstream = await Bun.connect<Side>({
                hostname: '127.0.0.1',
                port: targetPort,
                data: { peer: client, pending: [] },
                socket: {
                  data: (_, chunk) => void client.write(chunk),
                  close: () => void client.end(),
                  error: () => void client.end(),
                },
              })
              open.add(upstream)
              client.data.peer = upstream
              for (const chunk of client.data.pending.splice(0)) upstream.write(chunk)
            } catch {
              client.end()
            }
          },
          data: (client, chunk) => void forward(client.data.peer, chunk, client.data),
          close: (client) => void client.data.peer?.end(),
          error: (client) => void client.data.peer?.end(),
        },
      })
      return proxy
    },
    cut() {
      listener?.stop(true)
      listener = undefined
      for (const socket of open) socket.end()
      open.clear()
    },
  }
  return proxy.heal()
}
