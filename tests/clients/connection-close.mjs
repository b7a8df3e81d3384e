// Node's HTTP client the way node-fetch 2, http-proxy gateways and many SDKs use it: a keep-alive
// agent (Node 20's global agent is one) and `Connection: close` on every request. A socket that
// the server closes without saying so goes back to the pool and the next request on it fails.
// Usage: node connection-close.mjs <url> <rounds> <concurrency> [method] [json-body] [bearer-token]
import http from 'node:http'

const [url, rounds = '3', concurrency = '300', method = 'GET', body, token] = process.argv.slice(2)
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })

function send() {
  return new Promise((resolve) => {
    const request = http.request(
      url,
      {
        method,
        agent,
        headers: {
          connection: 'close',
          ...(body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
      },
      (response) => {
        response.resume()
        response.on('end', () => resolve({ status: response.statusCode, connection: response.headers.connection }))
      },
    )
    request.on('error', (error) => resolve({ error: error.code ?? error.message }))
    request.end(body)
  })
}

const outcomes = { statuses: {}, errors: {}, connectionHeaders: {} }
for (let round = 0; round < Number(rounds); round++) {
  const replies = await Promise.all(Array.from({ length: Number(concurrency) }, send))
  for (const reply of replies) {
    const [bucket, key] = reply.error ? ['errors', reply.error] : ['statuses', reply.status]
    outcomes[bucket][key] = (outcomes[bucket][key] ?? 0) + 1
    if (!reply.error)
      outcomes.connectionHeaders[reply.connection] = (outcomes.connectionHeaders[reply.connection] ?? 0) + 1
  }
}
agent.destroy()
console.log(JSON.stringify(outcomes))
