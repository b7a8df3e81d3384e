import { drizzle } from 'drizzle-orm/postgres-js'
import postgres from 'postgres'
import { config } from '../config'
import * as schema from './schema'

/** The raw postgres.js pool, for the few statements written in SQL on purpose. */
export const sql = postgres(config.DATABASE_URL, {
  max: config.DATABASE_POOL_SIZE,
  onnotice: () => {},
})

export const db = drizzle(sql, { schema })

export type Database = typeof db

/** A Drizzle transaction, for helpers that must write inside the caller's transaction. */
export type Transaction = Parameters<Parameters<Database['transaction']>[0]>[0]
