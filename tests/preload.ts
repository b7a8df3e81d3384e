// Runs before any test file: gives the suite its own environment and a freshly migrated database.
import postgres from 'postgres'
import { runMigrations } from '../src/db/migrate'

const baseUrl = new URL(process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/order_api_test')
const baseName = decodeURIComponent(baseUrl.pathname.slice(1))
if (!baseName.endsWith('_test')) throw new Error(`Refusing to use ${baseName}: test database names end in _test`)

// Each run has databases of its own (`<name>_<pid>` and the ones derived from it), so two runs
// on one host never drop each other's.
const databaseName = `${baseName}_${process.pid}`
const databaseUrl = Object.assign(new URL(baseUrl), { pathname: `/${databaseName}` }).toString()

Object.assign(process.env, {
  NODE_ENV: 'test',
  DATABASE_URL: databaseUrl,
  TEST_DATABASE_NAME: databaseName,
  DATABASE_POOL_SIZE: '10',
  REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
  JWT_SECRET: 'test-only-secret-0123456789abcdef0123456789',
  JWT_EXPIRES_IN: '15m',
  REFRESH_TOKEN_TTL: '30d',
  ADMIN_EMAIL: 'seed-admin@example.com',
  ADMIN_PASSWORD: 'seed-admin-password',
  QUEUE_PREFIX: `order-api-test-${process.pid}`,
  LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
  LOG_PRETTY: '0',
  // In-process tests share one client address; the rate-limit tests start servers with low limits.
  RATE_LIMIT_AUTH_MAX: '1000000',
  RATE_LIMIT_SEARCH_MAX: '1000000',
  TRUST_PROXY: 'false',
  CORS_ORIGINS: '',
  WORKER_METRICS_PORT: '0',
  // The reconciler re-enqueues work older than this whose job it cannot find on its own prefix.
  // Processes of this suite run on many prefixes over one database: only the tests of the
  // reconciler turn it on, with short settings of their own.
  RECONCILE_AFTER_SECONDS: '86400',
  // Webhook tests: a receiver on loopback, quick retries and timeouts.
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
  WEBHOOK_BACKOFF_MS: '20',
  WEBHOOK_TIMEOUT_MS: '500',
  WEBHOOK_MAX_ATTEMPTS: '3',
  WEBHOOK_DISABLE_AFTER: '3',
})

const maintenanceUrl = Object.assign(new URL(baseUrl), { pathname: '/postgres' }).toString()
const maintenance = () => postgres(maintenanceUrl, { max: 1, onnotice: () => {} })

/**
 * Drops the databases of earlier runs on this host whose process is gone. This run's are left
 * behind when it ends, for a look after a failure; the next run drops them.
 */
async function dropStaleDatabases() {
  const admin = maintenance()
  try {
    const rows = await admin<{ datname: string }[]>`
      SELECT datname FROM pg_database WHERE datname LIKE ${`${baseName.replace(/_/g, '\\_')}\\_%`}`
    for (const { datname } of rows) {
      const pid = Number(datname.slice(baseName.length + 1).split('_')[0])
      if (!Number.isInteger(pid) || pid <= 0) continue
      if (pid !== process.pid && isAlive(pid)) continue
      await admin`DROP DATABASE IF EXISTS ${admin(datname)} WITH (FORCE)`
    }
  } finally {
    await admin.end()
  }
}

function isAlive(pid: number) {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

await dropStaleDatabases()
await runMigrations(databaseUrl)
