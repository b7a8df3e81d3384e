import client from 'prom-client'
import { registry } from '../../lib/metrics'

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
