import { type Column, getTableName, type Table } from 'drizzle-orm'
import type { Fragment } from 'postgres'
import { sql } from './client'
import { joined } from './cte'

// Names from the schema (schema.ts) for statements written in SQL: a table or column renamed
// there is renamed here too, and one that no longer exists fails the type check.

const identifier = (name: string): Fragment => sql`${sql(name)}`

/** `"table" ("column", …)`: an INSERT's target, its columns named by their schema keys. */
export function into<T extends Table>(table: T, keys: readonly (keyof T['_']['columns'] & string)[]): Fragment {
  const columns = keys.map((key) => identifier((table as unknown as Record<string, Column>)[key]!.name))
  return sql`${identifier(getTableName(table))} (${joined(columns, ',')})`
}
