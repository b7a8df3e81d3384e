import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Sql } from 'postgres'

// The SQL functions the API's statements and triggers call (the documents, the fan-out, the
// change feed) live in db/functions/, one file each: a reader finds order_document in one place,
// not in whichever migration replaced it last. The migrations before this rule wrote them too;
// runMigrations applies every file after them, so the files are what the database runs.

const FUNCTIONS_FOLDER = fileURLToPath(new URL('./functions', import.meta.url))

/** Each function file: its name (the function's) and its `CREATE OR REPLACE FUNCTION` text. */
export const functionFiles = () =>
  readdirSync(FUNCTIONS_FOLDER)
    .filter((file) => file.endsWith('.sql'))
    .sort()
    .map((file) => ({ name: file.slice(0, -'.sql'.length), text: readFileSync(`${FUNCTIONS_FOLDER}/${file}`, 'utf8') }))

/**
 * Applies every function file in one transaction: idempotent, and safe beside running
 * statements (a replaced function takes effect for the statements that start after it).
 * Bodies are checked when called, not here, so files need no order among themselves.
 */
export async function applyFunctions(client: Sql) {
  await client.begin(async (tx) => {
    await tx`SET LOCAL check_function_bodies = off`
    for (const { text } of functionFiles()) await tx.unsafe(text)
  })
}
