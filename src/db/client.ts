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

/**
 * For catalogue lists only: each statement is planned with its values. A generic plan (what
 * prepared statements settle on) cannot see how selective `ILIKE $1` or a price range is, and
 * for a search sorted by price it walks the price index over the whole table (20 ms on 100 000
 * products, against 0.5 ms planned with the pattern). Answers are cached, so a few connections do.
 */
export const catalogueSql = postgres(config.DATABASE_URL, {
  max: CATALOGUE_CONNECTIONS,
  // Public, anonymous queries: none may hold a connection (or Postgres's CPU) for long.
  connection: { plan_cache_mode: 'force_custom_plan', statement_timeout: config.CATALOGUE_STATEMENT_TIMEOUT_MS },
  onnotice: () => {},
})

export const catalogueDb = drizzle(catalogueSql, { schema })

/** Closes both pools (API shutdown). */
export const closeDatabase = () => Promise.all([sql.end({ timeout: 5 }), catalogueSql.end({ timeout: 5 })])

/** A Drizzle transaction, for helpers that must write inside the caller's transaction. */
export type Transaction = Parameters<Parameters<Database['transaction']>[0]>[0]
