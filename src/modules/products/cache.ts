import DataLoader from 'dataloader'
import { LRUCache } from 'lru-cache'
import { broadcast, listen } from '../../lib/broadcast'
import { catalogueCacheRequests } from '../../lib/metrics'
import { watchProductChanges } from './changes'
import { type CatalogueQuery, findProducts, listProducts } from './service'

// Catalogue answers (product pages and products), kept in memory as the JSON sent and its ETag.
//
// Freshness, per the contract: nothing served is more than 1 s stale, which bounds how stale
// inventory (changed by every order and cancel) and another replica's admin write can be.
// - A page lives 1 s from the moment its read began.
// - A product lives for as long as it does not change: polls of what Postgres changed (changes.ts)
//   drop the products that did, and vouch for the rest. When polls stop vouching (Postgres is
//   unreachable, say), a product falls back to the pages' 1 s.
// An admin write also empties this process's cache before it answers and tells the other
// processes to do the same (a broadcast, for the pages; the 1 s bound holds even when it is lost).
// Orders never read from here: they take stock against the live row.
//
// Concurrent misses for one key share one read, and misses for single products are read
// together (one query for all the ids asked meanwhile), so a burst costs Postgres little.

export type CachedAnswer = { body: string; etag: string }

const FRESH_FOR_MS = 1_000
const CHANNEL = 'catalogue:changed'

// Sized for what a second brings: entries older than that are useless anyway.
const pages = new LRUCache<string, Promise<CachedAnswer>>({ max: 2_000, ttl: FRESH_FOR_MS })

type Item = {
  answer: CachedAnswer | null
  /** When its read began (performance.now()). */
  readAt: number
  /** Polls completed when its read began; -1 when no poll can vouch for it. */
  pollsBefore: number
}
// Sized in bytes (~120 000 typical products); a product nobody asked for in a minute leaves.
const items = new LRUCache<number, Item>({
  maxSize: 32 * 2 ** 20,
  sizeCalculation: (item) => 100 + (item.answer?.body.length ?? 0),
  ttl: 60_000,
  updateAgeOnGet: true,
})
const itemsReading = new Map<number, Promise<CachedAnswer | null>>()

// Polls go on while products are asked for, and stop a minute after the last request.
let lastAskedAt = Number.NEGATIVE_INFINITY
const changes = watchProductChanges({
  onChange: (changed) => (changed === 'all' ? items.clear() : stockChanged(changed)),
  wanted: () => performance.now() - lastAskedAt < 60_000,
})
/** API shutdown: no more polls. */
export const stopWatchingProducts = () => changes.stop()

// Reads in flight are forgotten too, so that what they bring is not kept.
function forgetAll() {
  pages.clear()
  items.clear()
  itemsReading.clear()
}
listen(CHANNEL, { onMessage: forgetAll, onResync: forgetAll })

/**
 * After an order or a cancel on this process: its products' answers go at once, so a shopper who
 * just ordered sees the new stock (other processes drop them at their next poll). Lists keep
 * their 1 s: clearing them on every order would recount the catalogue for each order of a sale.
 */
export function stockChanged(productIds: Iterable<number>) {
  for (const id of productIds) {
    items.delete(id)
    itemsReading.delete(id)
  }
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

export function cachedPage(query: CatalogueQuery): Promise<CachedAnswer> {
  const key = JSON.stringify(query)
  const known = pages.get(key)
  catalogueCacheRequests.inc({ kind: 'list', result: known ? 'hit' : 'miss' })
  if (known) return known
  const reading = listProducts(query).then(answer)
  pages.set(key, reading)
  // A failed read is not remembered: the next request tries again.
  reading.catch(() => {
    if (pages.get(key) === reading) pages.delete(key)
  })
  return reading
}

/** A product's answer, or null when there is no such (undeleted) product. */
export function cachedProduct(id: number): Promise<CachedAnswer | null> {
  const now = performance.now()
  lastAskedAt = now
  const item = items.get(id)
  const fresh =
    item !== undefined &&
    (now - item.readAt <= FRESH_FOR_MS || changes.vouches(item.pollsBefore, now, FRESH_FOR_MS))
  const reading = fresh ? undefined : itemsReading.get(id)
  catalogueCacheRequests.inc({ kind: 'get', result: fresh || reading ? 'hit' : 'miss' })
  if (fresh) return Promise.resolve(item.answer)
  return reading ?? readProduct(id, now)
}

function readProduct(id: number, readAt: number) {
  const pollsBefore = changes.completed()
  changes.ensureRunning()
  const reading = productLoader.load(id)
  itemsReading.set(id, reading)
  reading.then(
    (answer) => {
      if (itemsReading.get(id) !== reading) return
      itemsReading.delete(id)
      // A poll that completed meanwhile dropped this product before it was here to drop.
      items.set(id, { answer, readAt, pollsBefore: changes.changedAfter(pollsBefore, id) ? -1 : pollsBefore })
    },
    // A failed read is not remembered: the next request tries again.
    () => {
      if (itemsReading.get(id) === reading) itemsReading.delete(id)
    },
  )
  return reading
}

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
