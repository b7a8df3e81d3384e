import { drizzle } from 'drizzle-orm/postgres-js'
import { migrate } from 'drizzle-orm/postgres-js/migrator'
import postgres from 'postgres'
import { fileURLToPath } from 'node:url'
import { ensureDatabase } from './ensure-database'
import { applyFunctions } from './functions'

const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../drizzle', import.meta.url))
// Any constant works; it only has to be the same for every process that migrates.
const MIGRATION_LOCK_ID = 7_246_001

/** Applies the committed SQL migrations, then the SQL functions (functions.ts); safe to run from several replicas at once. */
export async function runMigrations(url: string): Promise<void> {
  await ensureDatabase(url)
  const client = postgres(url, { max: 1, onnotice: () => {} })
  try {
    await client`SELECT pg_advisory_lock(${MIGRATION_LOCK_ID})`
    await migrate(drizzle(client), { migrationsFolder: MIGRATIONS_FOLDER })
    await applyFunctions(client)
    await client`SELECT pg_advisory_unlock(${MIGRATION_LOCK_ID})`
  } finally {
    await client.end()
  }
}

if (import.meta.main) {
  const { config } = await import('../config')
  const { logger } = await import('../lib/logger')
  try {
    await runMigrations(config.DATABASE_URL)
    logger.info({ database: new URL(config.DATABASE_URL).pathname.slice(1) }, 'migrations applied')
  } catch (error) {
    logger.error({ err: error }, 'migration failed')
    process.exit(1)
  }
}
