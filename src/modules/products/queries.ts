// Reads of the catalogue: what the cache (cache.ts) and the change polls (changes.ts) ask Postgres.
import { and, asc, count, desc, eq, gt, gte, ilike, isNull, lte, or, type SQL, sql } from 'drizzle-orm'
import { catalogueDb, searchDb, sql as postgresSql } from '../../db/client'
import type { AnyPgColumn } from 'drizzle-orm/pg-core'
import { products } from '../../db/schema'
import { badRequest } from '../../lib/errors'
import { paged, pagination } from '../../lib/model'
import type { ListProductsQuery, Product, ProductSort } from './model'

type ProductRow = typeof products.$inferSelect

export const toProduct = (row: ProductRow): Product => ({
  id: row.id,
  name: row.name,
  description: row.description,
  price_cents: row.priceCents,
  inventory: row.inventory,
  is_active: row.isActive,
  low_stock_threshold: row.lowStockThreshold,
  created_at: row.createdAt.toISOString(),
  updated_at: row.updatedAt.toISOString(),
})

export const notDeleted = isNull(products.deletedAt)

export type CatalogueQuery = {
  page: number
  limit: number
  offset: number
  active?: boolean
  q?: string
  minPriceCents?: number
  maxPriceCents?: number
  inStock?: boolean
  sort: ProductSort
}

/** The list query in a canonical form (the cache key), or a 400 for filters that contradict. */
export function catalogueQuery(query: ListProductsQuery): CatalogueQuery {
  const { min_price_cents: minPriceCents, max_price_cents: maxPriceCents } = query
  if (minPriceCents !== undefined && maxPriceCents !== undefined && minPriceCents > maxPriceCents)
    throw badRequest('min_price_cents must not be above max_price_cents')
  return {
    ...pagination(query),
    active: query.active,
    q: query.q,
    minPriceCents,
    maxPriceCents,
    inStock: query.in_stock,
    sort: query.sort ?? 'id',
  }
}

type SortKeys = Record<'id' | 'name' | 'priceCents' | 'createdAt', SQL | AnyPgColumn>

// Each sort matches one of the indexes in schema.ts (descending ones are NULLS LAST there).
const descending = (key: SQL | AnyPgColumn) => sql`${key} DESC NULLS LAST`
const sortOrder = (sort: ProductSort, k: SortKeys): SQL[] =>
  ({
    id: [asc(k.id)],
    '-id': [desc(k.id)],
    name: [asc(k.name), asc(k.id)],
    '-name': [descending(k.name), asc(k.id)],
    price_cents: [asc(k.priceCents), asc(k.id)],
    '-price_cents': [descending(k.priceCents), asc(k.id)],
    created_at: [asc(k.createdAt), asc(k.id)],
    '-created_at': [descending(k.createdAt), asc(k.id)],
  })[sort]

const indexedKeys: SortKeys = products
// The same order, through expressions no index matches. With `q`, an estimate that many rows
// match would otherwise make Postgres walk a sort index through the table, filtering each row
// (50 ms for a 4-digit q on 100 000 products); this way it finds the matches through the
// trigram indexes and sorts those (well under a millisecond).
const unindexedKeys: SortKeys = {
  id: sql`${products.id} + 0`,
  name: sql`${products.name} || ''`,
  priceCents: sql`${products.priceCents} + 0`,
  createdAt: sql`${products.createdAt} + interval '0 s'`,
}

/** Up to this many matches (whatever their stock), a search is read whole (see searchMatches). */
const SMALL_MATCH_SET = 100

/** `q` as an ILIKE pattern matching it literally anywhere (%, _ and \ escaped). */
const anywhere = (q: string) => `%${q.replace(/[\\%_]/g, '\\$&')}%`

/**
 * A `q` shorter than a trigram cannot use the trigram indexes: such a search scans the table.
 * Those run on a connection of their own, taking turns (search-lane.ts); the others, and plain
 * lists, are served by indexes on the catalogue pool.
 */
export const scansTable = (query: CatalogueQuery) => query.q !== undefined && query.q.length < 3
const poolFor = (query: CatalogueQuery) => (scansTable(query) ? searchDb : catalogueDb)

function whateverTheStock(query: CatalogueQuery) {
  const pattern = query.q === undefined ? undefined : anywhere(query.q)
  return and(
    notDeleted,
    query.active === undefined ? undefined : eq(products.isActive, query.active),
    pattern === undefined ? undefined : or(ilike(products.name, pattern), ilike(products.description, pattern)),
    query.minPriceCents === undefined ? undefined : gte(products.priceCents, query.minPriceCents),
    query.maxPriceCents === undefined ? undefined : lte(products.priceCents, query.maxPriceCents),
  )
}

const filtered = (query: CatalogueQuery) =>
  and(
    whateverTheStock(query),
    query.inStock === undefined ? undefined : query.inStock ? gt(products.inventory, 0) : eq(products.inventory, 0),
  )

const sortedPage = (query: CatalogueQuery, where: SQL | undefined, limit: number, offset: number) =>
  poolFor(query)
    .select()
    .from(products)
    .where(where)
    .orderBy(...sortOrder(query.sort, query.q === undefined ? indexedKeys : unindexedKeys))
    .limit(limit)
    .offset(offset)

/**
 * Every product a search matches whatever its stock, in the query's order, when they are few
 * (a search usually matches few): its pages and its totals for any stock filter then come from
 * memory (pageOfMatches), and depend on the stock of those products only. Undefined when more match.
 */
export async function searchMatches(query: CatalogueQuery): Promise<Product[] | undefined> {
  const matches = await sortedPage(query, whateverTheStock(query), SMALL_MATCH_SET + 1, 0)
  return matches.length <= SMALL_MATCH_SET ? matches.map(toProduct) : undefined
}

/** One page of a search read whole (searchMatches), filtered by stock. */
export function pageOfMatches(matches: readonly Product[], query: CatalogueQuery) {
  const shown =
    query.inStock === undefined ? matches : matches.filter((product) => product.inventory > 0 === query.inStock)
  return paged(shown.slice(query.offset, query.offset + query.limit), shown.length, query.page, query.limit)
}

/** One page of the filtered catalogue, straight from Postgres. */
export async function productPage(query: CatalogueQuery): Promise<Product[]> {
  return (await sortedPage(query, filtered(query), query.limit, query.offset)).map(toProduct)
}

/** The size of the filtered catalogue (whatever the page). */
export async function countProducts(query: CatalogueQuery): Promise<number> {
  const [counted] = await poolFor(query).select({ total: count() }).from(products).where(filtered(query))
  return counted?.total ?? 0
}

/**
 * Products by id, in one statement whatever their number (an array parameter, not an IN list
 * that would make a statement of its own for each batch size); deleted ones are missing.
 */
export async function findProducts(ids: readonly number[]): Promise<Product[]> {
  return postgresSql<Product[]>`
    SELECT id, name, description, price_cents, inventory::float8 AS inventory, is_active, low_stock_threshold,
      iso_time(created_at) AS created_at, iso_time(updated_at) AS updated_at
    FROM products WHERE id = ANY(${ids as number[]}::int[]) AND deleted_at IS NULL`
}

export type ProductChanges = {
  /** This call's snapshot (pg_snapshot as text): pass it to the next call. */
  snapshot: string
  /** catalogue_version: it moves with every write to the catalogue other than stock. */
  version: string
  /** Products written since the earlier snapshot (none on the first call). */
  changed: number[]
}

/**
 * The products written by every transaction that committed after an earlier call's snapshot was
 * taken, from the change feed (product_changes, one row per product per writing statement, made
 * by triggers). Such a transaction was either still running then (in the snapshot's list of
 * running ids) or began after it (an id at or past its xmax); both are index lookups on the
 * 64-bit ids, so the cost is what changed, not the catalogue's size, and an old transaction left
 * open elsewhere holds nothing back (unlike a horizon). Ids still running now are not visible
 * yet: they are in this call's snapshot, and the next call finds them. So successive calls, each
 * passing the snapshot the previous one returned, miss no commit, whoever made it.
 */
export async function productChangesSince(snapshot: string | undefined): Promise<ProductChanges> {
  const changed =
    snapshot === undefined
      ? postgresSql`'{}'::int[]`
      : postgresSql`ARRAY(
          SELECT DISTINCT product_id FROM product_changes
          WHERE xid >= pg_snapshot_xmax(${snapshot}::pg_snapshot)
            OR xid = ANY(ARRAY(SELECT pg_snapshot_xip(${snapshot}::pg_snapshot))))`
  const [row] = await postgresSql<ProductChanges[]>`
    SELECT pg_current_snapshot()::text AS snapshot, (SELECT version FROM catalogue_version)::text AS version,
      ${changed} AS changed`
  return row!
}

/** The change feed's rows older than `minutes` (they are read within seconds); returns how many. */
export async function deleteOldProductChanges(minutes: number): Promise<number> {
  const deleted = await postgresSql`
    DELETE FROM product_changes WHERE changed_at < now() - make_interval(mins => ${minutes})`
  return deleted.count
}
