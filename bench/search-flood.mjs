// A product-page client (GET /api/products/:id) measured alone and beside a flood of uncached
// short searches at varying pages, alternately, in one run: the flood must not starve it.
// Usage: node bench/search-flood.mjs <options.json>; prints one JSON line per phase.
import autocannon from 'autocannon'
import { readFileSync } from 'node:fs'

const options = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const pick = (list) => list[Math.floor(Math.random() * list.length)]
const letters = 'abcdefghijklmnopqrstuvwxyz0123456789'

const run = (connections, setupRequest) =>
  autocannon({ url: options.url, connections, duration: options.duration, requests: [{ setupRequest }] })
const getter = () =>
  run(options.getConnections, (request) => ({ ...request, path: `/api/products/${pick(options.productIds)}` }))
const flood = () =>
  run(options.floodConnections, (request) => ({
    ...request,
    // One or two characters (no trigram index serves them), a page nobody asked for yet.
    path: `/api/products?q=${pick(letters)}${Math.random() < 0.5 ? pick(letters) : ''}&page=${1 + Math.floor(Math.random() * 2000)}&limit=10`,
    headers: options.floodAddresses
      ? { 'x-forwarded-for': `10.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.1` }
      : {},
  }))
const summary = (result) => ({
  requestsPerSecond: Math.round(result.requests.average),
  p50: result.latency.p50,
  p99: result.latency.p99,
  statuses: Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([code, stat]) => [code, stat.count])),
  errors: result.errors + result.timeouts,
})

// Warm the product pages (a running shop has them cached), then alternate.
await run(options.getConnections, (request) => ({ ...request, path: `/api/products/${pick(options.productIds)}` }))
for (let round = 1; round <= options.rounds; round++) {
  console.log(JSON.stringify({ round, phase: 'get alone', get: summary(await getter()) }))
  const [get, flooded] = await Promise.all([getter(), flood()])
  console.log(JSON.stringify({ round, phase: 'get beside the flood', get: summary(get), flood: summary(flooded) }))
}
