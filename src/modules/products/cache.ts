import DataLoader from 'dataloader'
import { LRUCache } from 'lru-cache'
import { broadcast, listen } from '../../lib/broadcast'
import { catalogueCacheRequests } from '../../lib/metrics'
import { type CatalogueQuery, findProducts, listProducts } from './service'

// Catalogue answers (product pages and products), kept in memory as the JSON sent and its ETag.
//
// Freshness, per the contract: an entry lives at most 1 s from the moment its read began, which
// bounds how stale inventory (changed by every order and cancel) and another replica's admin
// write can be. An admin write empties this process's cache before it answers and tells the
// other processes to do the same (a broadcast; the 1 s bound holds even when it is lost).
// Orders never read from here: they take stock against the live row.
//
// Concurrent misses for one key share one read, and misses for single products are read
// together (one query for all the ids asked meanwhile), so a burst costs Postgres little.

export type CachedAnswer = { body: string; etag: string }

const FRESH_FOR_MS = 1_000
const CHANNEL = 'catalogue:changed'

// Sized for what a second brings: entries older than that are useless anyway.
const pages = new LRUCache<string, Promise<CachedAnswer>>({ max: 2_000, ttl: FRESH_FOR_MS })
const items = new LRUCache<number, Promise<CachedAnswer | null>>({ max: 20_000, ttl: FRESH_FOR_MS })

function forgetAll() {
  pages.clear()
  items.clear()
}
listen(CHANNEL, { onMessage: forgetAll, onResync: forgetAll })

/**
 * After an order or a cancel on this process: its products' answers go at once, so a shopper who
 * just ordered sees the new stock. Lists keep their 1 s: clearing them on every order would
 * recount the catalogue for each order of a flash sale. Other processes keep the 1 s bound.
 */
export function stockChanged(productIds: number[]) {
  for (const id of productIds) items.delete(id)
}

/** After an admin write has committed: gone here at once, on the other processes within moments. */
export async function catalogueChanged() {
  forgetAll()
  await broadcast(CHANNEL, 'changed')
}

// A strong validator of the exact bytes: it changes whenever the answer does.
const answer = (value: unknown): CachedAnswer => {
  const body = JSON.stringify(value)
  return { body, etag: `"${Bun.hash(body).toString(36)}"` }
}

function remembered<K extends string | number, V extends CachedAnswer | null>(
  cache: LRUCache<K, Promise<V>>,
  kind: 'list' | 'get',
  key: K,
  read: () => Promise<V>,
): Promise<V> {
  const known = cache.get(key)
  catalogueCacheRequests.inc({ kind, result: known ? 'hit' : 'miss' })
  if (known) return known
  const reading = read()
  cache.set(key, reading)
  // A failed read is not remembered: the next request tries again.
  reading.catch(() => {
    if (cache.get(key) === reading) cache.delete(key)
  })
  return reading
}

export const cachedPage = (query: CatalogueQuery) =>
  remembered(pages, 'list', JSON.stringify(query), async () => answer(await listProducts(query)))

// One batch of products in flight at a time; the ids asked for meanwhile go in the next one.
let batchInFlight: Promise<unknown> | undefined

async function readProducts(ids: readonly number[]) {
  const reading = findProducts(ids)
  const done = reading.then(
    () => {},
    () => {},
  )
  batchInFlight = done
  try {
    const byId = new Map((await reading).map((product) => [product.id, answer(product)]))
    return ids.map((id) => byId.get(id) ?? null)
  } finally {
    if (batchInFlight === done) batchInFlight = undefined
  }
}

const productLoader = new DataLoader<number, CachedAnswer | null>(readProducts, {
  cache: false,
  maxBatchSize: 200,
  batchScheduleFn: (dispatch) => (batchInFlight ? void batchInFlight.then(dispatch) : process.nextTick(dispatch)),
})

/** A product's answer, or null when there is no such (undeleted) product. */
export const cachedProduct = (id: number) => remembered(items, 'get', id, () => productLoader.load(id))
