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

/** A Drizzle transaction, for helpers that must write inside the caller's transaction. */
export type Transaction = Parameters<Parameters<Database['transaction']>[0]>[0]
