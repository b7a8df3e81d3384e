import type { Server } from 'bun'

export type Arrival = { path: string; headers: Record<string, string>; body: string; at: number }

/**
 * A real HTTP receiver on loopback for webhook tests: records every request and answers per
 * path (204 unless a path says otherwise). `start(port)` can bring it back on the same port
 * after `stop()`, to play an outage.
 */
export function webhookReceiver() {
  const arrivals: Arrival[] = []
  const answers = new Map<string, (nth: number) => Response | Promise<Response>>()
  let server: Server<undefined> | undefined
  return {
    arrivals,
    start(port = 0, hostname = '127.0.0.1') {
      server = Bun.serve({
        hostname,
        port,
        async fetch(request) {
          const path = new URL(request.url).pathname
          const arrival = {
            path,
            headers: Object.fromEntries(request.headers),
            body: await request.text(),
            at: Date.now(),
          }
          arrivals.push(arrival)
          const answer = answers.get(path)
          return answer
            ? answer(arrivals.filter((other) => other.path === path).length)
            : new Response(null, { status: 204 })
        },
      })
      return this
    },
    get port() {
      return server!.port!
    },
    url(path: string, host = '127.0.0.1') {
      return `http://${host}:${server!.port}${path}`
    },
    answer(path: string, respond: (nth: number) => Response | Promise<Response>) {
      answers.set(path, respond)
    },
    at: (path: string) => arrivals.filter((arrival) => arrival.path === path),
    stop: () => server?.stop(true),
  }
}
