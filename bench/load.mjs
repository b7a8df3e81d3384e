// Runs one autocannon scenario (in Node, beside the server under test) and prints its summary
// as JSON (the last line; a `measuring` line marks the end of the warm-up).
// Usage: node bench/load.mjs <options.json>
import autocannon from 'autocannon'
import { readFileSync } from 'node:fs'

const options = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const pick = (list) => list[Math.floor(Math.random() * list.length)]
/** `count` different products, for orders of several lines. */
function distinct(count) {
  const ids = new Set()
  while (ids.size < count) ids.add(pick(options.productIds))
  return [...ids]
}

const searchPath = (term) => `/api/products?q=${term}&in_stock=true&sort=-price_cents&limit=10`
const getPath = (id) => `/api/products/${id}`

function setupRequest(request) {
  switch (options.kind) {
    case 'list':
      return { ...request, path: `/api/products?page=${1 + Math.floor(Math.random() * options.pages)}&limit=10` }
    case 'search':
      return { ...request, path: searchPath(pick(options.terms)) }
    case 'revalidate': {
      // A client that has the page already: it sends the page's current ETag.
      const [path, etag] = pick(options.etags)
      return { ...request, path, headers: { 'if-none-match': etag } }
    }
    case 'get': {
      // With `popular`, nine reads in ten go to those products, as shop traffic does.
      const ids = options.popular && Math.random() < 0.9 ? options.popular : options.productIds
      return { ...request, path: getPath(pick(ids)) }
    }
    case 'order':
      return {
        ...request,
        method: 'POST',
        path: '/api/orders',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${pick(options.tokens)}` },
        body: JSON.stringify({
          items: distinct(options.lines ?? 1).map((id) => ({ product_id: id, quantity: 1 })),
          ...(options.shippingAddress ? { shipping_address: options.shippingAddress } : {}),
        }),
      }
    default:
      throw new Error(`unknown kind ${options.kind}`)
  }
}

const run = (duration) =>
  autocannon({
    url: options.url,
    connections: options.connections,
    duration,
    requests: [{ setupRequest }],
  })

// A shop that has been running has had each of its products and searches asked for before: each
// is asked for once first (of the API and the ceiling alike), so the run measures that steady
// state, not a cold start.
const toPrime = { get: () => options.productIds.map(getPath), search: () => options.terms.map(searchPath) }[
  options.kind
]
if (toPrime) {
  const paths = toPrime()
  for (let start = 0; start < paths.length; start += options.connections) {
    const batch = paths.slice(start, start + options.connections)
    await Promise.all(batch.map((path) => fetch(new URL(path, options.url)).then((response) => response.arrayBuffer())))
  }
}
if (options.warmup > 0) await run(options.warmup)
// The runner samples the machine's CPU and the pipeline's counters between these two lines.
console.log(JSON.stringify({ phase: 'measuring' }))
const cpuBefore = process.cpuUsage()
const result = await run(options.duration)
const cpu = process.cpuUsage(cpuBefore)
const statuses = result.statusCodeStats ?? {}
console.log(
  JSON.stringify({
    requestsPerSecond: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    total: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    statuses: Object.fromEntries(Object.entries(statuses).map(([code, stat]) => [code, stat.count])),
    // The load generator's own CPU over the measured run, to subtract from the machine's.
    cpuMs: (cpu.user + cpu.system) / 1000,
  }),
)
