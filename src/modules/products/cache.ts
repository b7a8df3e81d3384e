import DataLoader from 'dataloader'
import { LRUCache } from 'lru-cache'
import { broadcast, listen } from '../../lib/broadcast'
import { postgresErrorCode } from '../../lib/error-handler'
import { Busy } from '../../lib/errors'
import { catalogueCacheRequests, reportCatalogueCacheBytes } from './metrics'
import { paged } from '../../lib/model'
import { withTimeout } from '../../lib/timeout'
import { config } from '../../config'
import { watchProductChanges } from './changes'
import { searchLane } from './search-lane'
import type { Product } from './model'
import {
  type CatalogueQuery,
  countProducts,
  findProducts,
  pageOfMatches,
  productPage,
  scansTable,
  searchMatches,
} from './queries'

// Catalogue answers (product pages and products), kept in memory as the JSON sent and its ETag.
//
// Freshness, per the contract: nothing served is more than 1 s stale, which bounds how stale
// inventory (changed by every order and cancel) and another replica's admin write can be.
// - An answer that knows the products it depends on (a product; a search read whole; a page
//   without a stock filter) lives for as long as none of them changes: polls of what Postgres
//   changed (changes.ts) drop it when one does, or when anything else in the catalogue is written,
//   and vouch for it meanwhile. When the polls stop vouching (Postgres unreachable, say) it falls
//   back to the rule for the others:
// - any other answer (a page filtered by stock) lives 1 s from the moment its read began.
// An admin write also empties this process's cache before it answers and tells the other
// processes to do the same (a broadcast, faster than their next poll).
// Orders never read from here: they take stock against the live row.
//
// Concurrent misses for one key share one read, and misses for single products are read
// together (one query for all the ids asked meanwhile), so a burst costs Postgres little.

export type CachedAnswer = { body: string; etag: string }

type Kind = 'list' | 'get'
type Age = {
  /** When its read began (performance.now()). */
  readAt: number
  /** Polls completed when its read began; -1 when no poll can vouch for it. */
  pollsBefore: number
}
/** What a read brings; an answer made from earlier reads is as old as the oldest of them. */
type Read<A> = { answer: A; dependsOn: readonly number[] | undefined; age?: Age }
type Entry<A> = Read<A> & Age

const FRESH_FOR_MS = 1_000
const CHANNEL = 'catalogue:changed'

// Polls go on while the catalogue is read, and stop a minute after the last request.
let lastAskedAt = Number.NEGATIVE_INFINITY
const changes = watchProductChanges({
  onChange: (changed) => (changed === 'all' ? forgetAll() : forgetProducts(changed)),
  wanted: () => performance.now() - lastAskedAt < 60_000,
})

/**
 * What an entry costs beside its answer's bytes: its key, the entry and answer objects, the ETag,
 * and lru-cache's bookkeeping. Measured with bun:jsc heapStats() after a full collection: 90 000
 * cached products took 62 MB of heap and string storage, 690 bytes each, of which ~210 are the
 * JSON body.
 */
const ENTRY_BYTES = 480

/**
 * Answers sized in bytes (`bytes` of the answer, plus ENTRY_BYTES), within `share` of
 * CATALOGUE_CACHE_MB; one nobody asked for in a minute leaves.
 */
function answers<K extends string | number, A>(part: string, share: number, bytes: (answer: A) => number) {
  return {
    part,
    kept: new LRUCache<K, Entry<A>>({
      maxSize: Math.floor(share * config.CATALOGUE_CACHE_MB * 2 ** 20),
      sizeCalculation: (entry) => ENTRY_BYTES + bytes(entry.answer) + 8 * (entry.dependsOn?.length ?? 0),
      ttl: 60_000,
      updateAgeOnGet: true,
    }),
    reading: new Map<K, Promise<Entry<A>>>(),
  }
}
type Answers<K extends string | number, A> = ReturnType<typeof answers<K, A>>
const bodyBytes = (answer: CachedAnswer | null) => answer?.body.length ?? 0
// One budget, CATALOGUE_CACHE_MB (32 by default): 45 % for products (14 MB hold ~21 000 typical
// ones; make bench's 90 000 need ~140 MB in all), 45 % for pages (of 10 to 50 products each: ~4 800
// search pages of ten), and the rest for what pages are made of: a search's matches when few
// (each page of it is then made in memory), and the totals of filtered sets (the same for all
// their pages).
const items = answers<number, CachedAnswer | null>('products', 0.45, bodyBytes)
const pages = answers<string, CachedAnswer>('pages', 0.45, bodyBytes)
const matchSets = answers<string, readonly Product[] | undefined>(
  'matches',
  0.08,
  (matches) => 400 * (matches?.length ?? 0),
)
const totals = answers<string, number>('totals', 0.02, () => 0)
const parts = [items, pages, matchSets, totals]

// Reads in flight are forgotten too, so that what they bring is not kept.
function forgetAll() {
  for (const cache of parts) {
    cache.kept.clear()
    cache.reading.clear()
  }
}

let following = false

/**
 * Follows what changes the catalogue (startApp in app.ts, before startBroadcasts): polls of Postgres while
 * the catalogue is read, and the other processes' broadcasts. Until then every answer lives 1 s.
 */
export function followCatalogueChanges() {
  listen(CHANNEL, { onMessage: forgetAll, onResync: forgetAll })
  reportCatalogueCacheBytes(() => Object.fromEntries(parts.map((cache) => [cache.part, cache.kept.calculatedSize])))
  following = true
}

/** API shutdown: no more polls. */
export function stopFollowingCatalogueChanges() {
  following = false
  changes.stop()
}

function forgetProducts(ids: ReadonlySet<number>) {
  stockChanged(ids)
  for (const cache of [pages, matchSets]) {
    const stale = [...cache.kept.entries()].filter(([, entry]) => entry.dependsOn?.some((id) => ids.has(id)))
    for (const [key] of stale) cache.kept.delete(key)
  }
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

/** The entry for `key`: kept and fresh, being read, or read now (`beforeRead` first). */
function remembered<K extends string | number, A>(
  cache: Answers<K, A>,
  kind: Kind | undefined,
  key: K,
  read: () => Promise<Read<A>>,
  beforeRead?: () => Promise<void>,
): Promise<Entry<A>> | Entry<A> {
  const now = performance.now()
  lastAskedAt = now
  const entry = cache.kept.get(key)
  const fresh =
    entry !== undefined && (now - entry.readAt <= FRESH_FOR_MS || changes.vouches(entry.pollsBefore, now, FRESH_FOR_MS))
  const reading = fresh ? undefined : cache.reading.get(key)
  if (kind) catalogueCacheRequests.inc({ kind, result: fresh || reading ? 'hit' : 'miss' })
  if (fresh) return entry
  if (reading) return reading
  if (!beforeRead) return readInto(cache, key, read, now)
  // Another request may have started the same read while this one was admitted: share it.
  return beforeRead().then(() => cache.reading.get(key) ?? readInto(cache, key, read, now))
}

// A kept answer is returned as it is, without a promise: most requests are hits.
const answerOf = <A>(entry: Promise<Entry<A>> | Entry<A>) =>
  entry instanceof Promise ? entry.then((done) => done.answer) : entry.answer

function readInto<K extends string | number, A>(
  cache: Answers<K, A>,
  key: K,
  read: () => Promise<Read<A>>,
  readAt: number,
) {
  const pollsBefore = changes.completed()
  if (following) changes.ensureRunning()
  const reading: Promise<Entry<A>> = read().then(({ answer, dependsOn, age }) => {
    const begun =
      age === undefined
        ? { readAt, pollsBefore }
        : {
            readAt: Math.min(readAt, age.readAt),
            pollsBefore: age.pollsBefore < 0 ? -1 : Math.min(pollsBefore, age.pollsBefore),
          }
    // A poll that completed meanwhile could not drop this answer before it was here to drop.
    const vouchable =
      begun.pollsBefore >= 0 && dependsOn !== undefined && !changes.changedAfter(begun.pollsBefore, dependsOn)
    const entry: Entry<A> = { answer, dependsOn, readAt: begun.readAt, pollsBefore: vouchable ? begun.pollsBefore : -1 }
    if (cache.reading.get(key) === reading) {
      cache.reading.delete(key)
      cache.kept.set(key, entry)
    }
    return entry
  })
  cache.reading.set(key, reading)
  // A failed read is not remembered: the next request tries again.
  reading.catch(() => {
    if (cache.reading.get(key) === reading) cache.reading.delete(key)
  })
  return reading
}

// Searches that scan the table take turns (search-lane.ts); every catalogue statement runs under
// a timeout. A search that cannot have its answer within CATALOGUE_STATEMENT_TIMEOUT_MS gets a
// 503 with Retry-After then, not a long wait. It waits out that time rather than being refused
// at once: a client refused at once asks again at once, and a flood of them would spend the
// process on refusals (64 connections: thousands a second, half of what a product page gets).
// Waiting costs a promise; past 1 024 waiting, a search is refused at once.
const QUERY_CANCELED = '57014'
const busy = () => new Busy('The catalogue is busy, try again shortly')
const searches = searchLane({ maxWaiting: 1_024, patienceMs: config.CATALOGUE_STATEMENT_TIMEOUT_MS, refuse: busy })

/** Keys of what a page is made of: the same for all pages of a query (and all stock filters). */
const totalKey = (query: CatalogueQuery) => JSON.stringify({ ...query, page: 0, limit: 0, offset: 0 })
const matchesKey = (query: CatalogueQuery) => JSON.stringify({ ...query, page: 0, limit: 0, offset: 0, inStock: null })
// Searches known to match more than a few: their pages skip straight to a count and a page query.
const broadSearches = new LRUCache<string, true>({ max: 10_000 })

async function readPage(query: CatalogueQuery): Promise<Read<CachedAnswer>> {
  if (query.q !== undefined) {
    const key = matchesKey(query)
    if (!broadSearches.has(key)) {
      const found = await remembered(matchSets, undefined, key, async () => {
        const matches = await searchMatches(query)
        return { answer: matches, dependsOn: matches?.map((product) => product.id) }
      })
      if (found.answer)
        return { answer: answer(pageOfMatches(found.answer, query)), dependsOn: found.dependsOn, age: found }
      broadSearches.set(key, true)
    }
  }
  // Without a stock filter, which products a query matches, and in what order, moves only with
  // catalogue_version (every write other than stock): its total depends on no product, and a page
  // on the products it shows. With one, any product's stock may change them: a second at most.
  const whateverTheStock = query.inStock === undefined
  const [rows, total] = await Promise.all([
    productPage(query),
    remembered(totals, undefined, totalKey(query), async () => ({
      answer: await countProducts(query),
      dependsOn: whateverTheStock ? [] : undefined,
    })),
  ])
  return {
    answer: answer(paged(rows, total.answer, query.page, query.limit)),
    dependsOn: whateverTheStock ? rows.map((product) => product.id) : undefined,
    age: total,
  }
}

const timedOut = (error: unknown): never => {
  throw postgresErrorCode(error) === QUERY_CANCELED ? busy() : error
}

const readSearchPage = (query: CatalogueQuery) => searches.take(() => readPage(query)).catch(timedOut)

/**
 * A catalogue page. `beforeRead` runs when the answer must be read from Postgres (neither
 * cached nor being read): the per-client limit on uncached searches. A search waits for its
 * turn no longer than a statement may run (then 503); its read goes on, and is kept.
 */
export function cachedPage(query: CatalogueQuery, beforeRead: (() => Promise<void>) | undefined) {
  if (query.q === undefined) return answerOf(remembered(pages, 'list', JSON.stringify(query), () => readPage(query)))
  const scans = scansTable(query)
  const page = answerOf(
    remembered(
      pages,
      'list',
      JSON.stringify(query),
      () => (scans ? readSearchPage(query) : readPage(query).catch(timedOut)),
      () => {
        // A full queue refuses before anything else is spent on the request.
        if (scans && searches.full()) throw busy()
        return beforeRead?.() ?? Promise.resolve()
      },
    ),
  )
  return page instanceof Promise ? withTimeout(page, config.CATALOGUE_STATEMENT_TIMEOUT_MS, busy) : page
}

/** A product's answer, or null when there is no such (undeleted) product. */
export const cachedProduct = (id: number) =>
  answerOf(remembered(items, 'get', id, async () => ({ answer: await productLoader.load(id), dependsOn: [id] })))

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
