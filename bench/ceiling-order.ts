// The order ceilings: the API's own order SQL driven straight from postgres.js, with no HTTP,
// JSON or auth around it. Single statement: the order writer (writeOrders) at the load's concurrency
// and pool size. Batched (`batchSize` set): placeOrderBatch with that many orders per batch,
// from `callers` concurrent callers. Rates count orders, latencies what each order waited.
// Usage: bun bench/ceiling-order.ts <options.json>  → prints the summary as JSON.
import postgres from 'postgres'
import { placeOrderBatch } from '../src/modules/orders/batch'
import { writeOrders } from '../src/modules/orders/placement'
import { bench } from './config'

const options = (await Bun.file(process.argv[2]!).json()) as {
  productIds: number[]
  customerIds: number[]
  warmup: number
  duration: number
  batchSize?: number
  callers?: number
  /** Lines per order, each a different product (default 1). */
  lines?: number
}
const sql = postgres(bench.databaseUrl, { max: bench.poolSize, onnotice: () => {} })
const pick = <T>(list: T[]) => list[Math.floor(Math.random() * list.length)]!
/** The products of one order: `lines` different ones, in id order (as the API sorts them). */
function productsOfOrder() {
  const ids = new Set<number>()
  while (ids.size < (options.lines ?? 1)) ids.add(pick(options.productIds))
  return [...ids].sort((a, b) => a - b)
}

async function drive(seconds: number) {
  const latencies: number[] = []
  let errors = 0
  const until = performance.now() + seconds * 1000
  await Promise.all(
    Array.from({ length: options.callers ?? bench.connections }, async () => {
      while (performance.now() < until) {
        const started = performance.now()
        try {
          if (options.batchSize) {
            const requests = Array.from({ length: options.batchSize }, () => ({
              userId: pick(options.customerIds),
              productIds: productsOfOrder(),
              quantities: Array(options.lines ?? 1).fill(1),
            }))
            await placeOrderBatch(requests)
            for (const _ of requests) latencies.push(performance.now() - started)
          } else {
            await writeOrders(sql, [
              {
                userId: pick(options.customerIds),
                productIds: productsOfOrder(),
                quantities: Array(options.lines ?? 1).fill(1),
                shippingAddress: null,
                traceContext: null,
              },
            ])
            latencies.push(performance.now() - started)
          }
        } catch {
          errors++
        }
      }
    }),
  )
  return { latencies, errors }
}

await drive(options.warmup)
const { latencies, errors } = await drive(options.duration)
latencies.sort((a, b) => a - b)
const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0
console.log(
  JSON.stringify({
    requestsPerSecond: latencies.length / options.duration,
    p50: Math.round(at(0.5) * 10) / 10,
    p99: Math.round(at(0.99) * 10) / 10,
    total: latencies.length,
    non2xx: 0,
    errors,
  }),
)
await sql.end()
process.exit(0)
