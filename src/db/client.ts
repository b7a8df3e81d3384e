import { drizzle } from 'drizzle-orm/postgres-js'
import postgres from 'postgres'
import { config } from '../config'
import * as schema from './schema'

/**
 * The raw postgres.js pool, for the few statements written in SQL on purpose.
 *
 * Beware: `drizzle(sql)` below replaces this pool's type parsers and serializers (Drizzle maps
 * values itself), so raw `sql` queries get `timestamptz`/`date` columns back as strings, not
 * Date objects, and JSON parameters must be passed as text (`${JSON.stringify(v)}::jsonb`).
 */
export const sql = postgres(config.DATABASE_URL, {
  max: config.DATABASE_POOL_SIZE,
  onnotice: () => {},
})

export const db = drizzle(sql, { schema })

export type Database = typeof db

export const CATALOGUE_CONNECTIONS = Math.min(4, config.DATABASE_POOL_SIZE)

// Catalogue reads are public and anonymous: none may hold a connection (or Postgres's CPU) for
// long. Each statement is planned with its values: a generic plan (what prepared statements
// settle on) cannot see how selective `ILIKE $1` or a price range is, and for a search sorted by
// price it walks the price index over the whole table (20 ms on 100 000 products, against 0.5 ms
// planned with the pattern). Answers are cached, so a few connections do.
const catalogueOptions = {
  connection: { plan_cache_mode: 'force_custom_plan', statement_timeout: config.CATALOGUE_STATEMENT_TIMEOUT_MS },
  onnotice: () => {},
}

/** For catalogue lists and searches the indexes serve. */
export const catalogueSql = postgres(config.DATABASE_URL, { ...catalogueOptions, max: CATALOGUE_CONNECTIONS })
export const catalogueDb = drizzle(catalogueSql, { schema })

/**
 * For searches that scan the table (a `q` of one or two characters cannot use the trigram
 * indexes), one connection: whatever a flood of them sends, they use at most one Postgres core
 * per API process (a quarter, with the rests of products/search-lane.ts); the rest wait their turn.
 */
export const searchSql = postgres(config.DATABASE_URL, { ...catalogueOptions, max: 1 })
export const searchDb = drizzle(searchSql, { schema })

/** Closes the pools (API shutdown). */
export const closeDatabase = () => Promise.all([sql, catalogueSql, searchSql].map((pool) => pool.end({ timeout: 5 })))

/** A Drizzle transaction, for helpers that must write inside the caller's transaction. */
export type Transaction = Parameters<Parameters<Database['transaction']>[0]>[0]
