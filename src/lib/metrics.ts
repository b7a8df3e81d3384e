import client from 'prom-client'

/** The API process's Prometheus registry, served at /metrics. */
export const registry = new client.Registry()
client.collectDefaultMetrics({ register: registry })

export const httpRequests = new client.Counter({
  name: 'http_requests_total',
  help: 'HTTP requests by method, route template and status',
  labelNames: ['method', 'route', 'status'] as const,
  registers: [registry],
})

export const httpDuration = new client.Histogram({
  name: 'http_request_duration_seconds',
  help: 'HTTP request latency by method, route template and status',
  labelNames: ['method', 'route', 'status'] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  registers: [registry],
})

export const ordersPlaced = new client.Counter({
  name: 'orders_placed_total',
  help: 'Orders placed (201)',
  registers: [registry],
})

export const ordersRejected = new client.Counter({
  name: 'orders_rejected_total',
  help: 'Orders refused by the stock rules, by reason',
  labelNames: ['reason'] as const,
  registers: [registry],
})

export const orderBatchSize = new client.Histogram({
  name: 'order_batch_size',
  help: 'Orders placed together in one batch (1 when the API is idle)',
  buckets: [1, 2, 4, 8, 16, 32, 64],
  registers: [registry],
})

// The catalogue cache's sizes by part, read when Prometheus scrapes (the cache hands its reader over).
let catalogueCacheSizes: () => Record<string, number> = () => ({})
export const reportCatalogueCacheBytes = (sizes: () => Record<string, number>) => {
  catalogueCacheSizes = sizes
}

new client.Gauge({
  name: 'catalogue_cache_bytes',
  help: 'Bytes the catalogue cache holds, by part (products, pages, matches, totals); all within CATALOGUE_CACHE_MB',
  labelNames: ['part'] as const,
  registers: [registry],
  collect() {
    for (const [part, bytes] of Object.entries(catalogueCacheSizes())) this.set({ part }, bytes)
  },
})

export const catalogueChangeFeedUp = new client.Gauge({
  name: 'catalogue_change_feed_up',
  help: 'Whether the last poll of the catalogue change feed worked (1) or failed (0: cached catalogue answers are then kept at most a second)',
  registers: [registry],
})

export const catalogueCacheRequests = new client.Counter({
  name: 'catalogue_cache_requests_total',
  help: 'Product list and get answers, by kind (list, get) and result (hit: from memory, miss: read from Postgres)',
  labelNames: ['kind', 'result'] as const,
  registers: [registry],
})
