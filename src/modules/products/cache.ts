import DataLoader from 'dataloader'
import { LRUCache } from 'lru-cache'
import { broadcast, listen } from '../../lib/broadcast'
import { CATALOGUE_CONNECTIONS } from '../../db/client'
import { postgresErrorCode } from '../../lib/error-handler'
import { Busy } from '../../lib/errors'
import { catalogueCacheRequests } from '../../lib/metrics'
import { watchProductChanges } from './changes'
import { type CatalogueQuery, findProducts, listProducts } from './service'

// Catalogue answers (product pages and products), kept in memory as the JSON sent and its ETag.
//
// Freshness, per the contract: nothing served is more than 1 s stale, which bounds how stale
// inventory (changed by every order and cancel) and another replica's admin write can be.
// - An answer that knows the products it depends on (a product; a search read whole) lives for as
//   long as none of them changes: polls of what Postgres changed (changes.ts) drop it when one
//   does, or when anything else in the catalogue is written, and vouch for it meanwhile. When the
//   polls stop vouching (Postgres unreachable, say) it falls back to the rule for the others:
// - any other answer lives 1 s from the moment its read began.
// An admin write also empties this process's cache before it answers and tells the other
// processes to do the same (a broadcast, faster than their next poll).
// Orders never read from here: they take stock against the live row.
//
// Concurrent misses for one key share one read, and misses for single products are read
// together (one query for all the ids asked meanwhile), so a burst costs Postgres little.

export type CachedAnswer = { body: string; etag: string }

type Kind = 'list' | 'get'
type Read<A> = { answer: A; dependsOn: readonly number[] | undefined }
type Entry<A> = Read<A> & {
  /** When its read began (performance.now()). */
  readAt: number
  /** Polls completed when its read began; -1 when no poll can vouch for it. */
  pollsBefore: number
}

const FRESH_FOR_MS = 1_000
const CHANNEL = 'catalogue:changed'

// Polls go on while the catalogue is read, and stop a minute after the last request.
let lastAskedAt = Number.NEGATIVE_INFINITY
const changes = watchProductChanges({
  onChange: (changed) => (changed === 'all' ? forgetAll() : forgetProducts(changed)),
  wanted: () => performance.now() - lastAskedAt < 60_000,
})
/** API shutdown: no more polls. */
export const stopWatchingProducts = () => changes.stop()

/** Answers sized in bytes; one nobody asked for in a minute leaves. */
function answers<K extends string | number, A extends CachedAnswer | null>(megabytes: number) {
  return {
    kept: new LRUCache<K, Entry<A>>({
      maxSize: megabytes * 2 ** 20,
      sizeCalculation: (entry) => 100 + (entry.answer?.body.length ?? 0) + 4 * (entry.dependsOn?.length ?? 0),
      ttl: 60_000,
      updateAgeOnGet: true,
    }),
    reading: new Map<K, Promise<Read<A>>>(),
  }
}
// 64 MB hold ~200 000 typical products; searches are pages of 10 to 50 of them.
const pages = answers<string, CachedAnswer>(32)
const items = answers<number, CachedAnswer | null>(64)

// Reads in flight are forgotten too, so that what they bring is not kept.
function forgetAll() {
  for (const cache of [pages, items]) {
    cache.kept.clear()
    cache.reading.clear()
  }
}
listen(CHANNEL, { onMessage: forgetAll, onResync: forgetAll })

function forgetProducts(ids: ReadonlySet<number>) {
  stockChanged(ids)
  const stale = [...pages.kept.entries()].filter(([, entry]) => entry.dependsOn?.some((id) => ids.has(id)))
  for (const [key] of stale) pages.kept.delete(key)
  // Pages being read are checked when they arrive (changedAfter).
}

/**
 * After an order or a cancel on this process: its products' answers go at once, so a shopper who
 * just ordered sees the new stock (other processes drop them at their next poll, as do pages).
 */
export function stockChanged(productIds: Iterable<number>) {
  for (const id of productIds) {
    items.kept.delete(id)
    items.reading.delete(id)
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

function remembered<K extends string | number, A extends CachedAnswer | null>(
  cache: ReturnType<typeof answers<K, A>>,
  kind: Kind,
  key: K,
  read: () => Promise<Read<A>>,
  beforeRead?: () => Promise<void>,
): Promise<A> | A {
  const now = performance.now()
  lastAskedAt = now
  const entry = cache.kept.get(key)
  const fresh =
    entry !== undefined && (now - entry.readAt <= FRESH_FOR_MS || changes.vouches(entry.pollsBefore, now, FRESH_FOR_MS))
  const reading = fresh ? undefined : cache.reading.get(key)
  catalogueCacheRequests.inc({ kind, result: fresh || reading ? 'hit' : 'miss' })
  if (fresh) return entry.answer
  if (reading) return reading.then((done) => done.answer)
  if (!beforeRead) return readInto(cache, key, read, now).then((done) => done.answer)
  // Another request may have started the same read while this one was admitted: share it.
  return beforeRead().then(() =>
    (cache.reading.get(key) ?? readInto(cache, key, read, now)).then((done) => done.answer),
  )
}

function readInto<K extends string | number, A extends CachedAnswer | null>(
  cache: ReturnType<typeof answers<K, A>>,
  key: K,
  read: () => Promise<Read<A>>,
  readAt: number,
) {
  const pollsBefore = changes.completed()
  changes.ensureRunning()
  const reading = read()
  cache.reading.set(key, reading)
  reading.then(
    (done) => {
      if (cache.reading.get(key) !== reading) return
      cache.reading.delete(key)
      // A poll that completed meanwhile could not drop this answer before it was here to drop.
      const vouchable = done.dependsOn !== undefined && !changes.changedAfter(pollsBefore, done.dependsOn)
      cache.kept.set(key, { ...done, readAt, pollsBefore: vouchable ? pollsBefore : -1 })
    },
    // A failed read is not remembered: the next request tries again.
    () => {
      if (cache.reading.get(key) === reading) cache.reading.delete(key)
    },
  )
  return reading
}

// Uncached searches are what an anonymous client can make expensive: each runs on the catalogue
// pool under a statement timeout, and no more than a few wait for it at once. Past either bound
// the request gets a quick 503 with Retry-After instead of a long wait.
const MAX_SEARCHES_READING = 4 * CATALOGUE_CONNECTIONS
let searchesReading = 0
const QUERY_CANCELED = '57014'

const busy = () => new Busy('The catalogue is busy, try again shortly')

async function readPage(query: CatalogueQuery) {
  if (searchesReading >= MAX_SEARCHES_READING) throw busy()
  searchesReading++
  try {
    const { page, dependsOn } = await listProducts(query)
    return { answer: answer(page), dependsOn }
  } catch (error) {
    if (postgresErrorCode(error) === QUERY_CANCELED) throw busy()
    throw error
  } finally {
    searchesReading--
  }
}

/**
 * A catalogue page. `beforeRead` runs when the answer must be read from Postgres (neither
 * cached nor being read): the per-client limit on uncached searches.
 */
export const cachedPage = (query: CatalogueQuery, beforeRead: (() => Promise<void>) | undefined) =>
  remembered(
    pages,
    'list',
    JSON.stringify(query),
    () => readPage(query),
    () => {
      // A full queue refuses before anything else is spent on the request.
      if (searchesReading >= MAX_SEARCHES_READING) throw busy()
      return beforeRead?.() ?? Promise.resolve()
    },
  )

/** A product's answer, or null when there is no such (undeleted) product. */
export const cachedProduct = (id: number) =>
  remembered(items, 'get', id, async () => ({ answer: await productLoader.load(id), dependsOn: [id] }))

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
