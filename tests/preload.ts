// Runs before any test file: gives the suite its own environment and a freshly migrated database.
import { setDefaultTimeout } from 'bun:test'
import postgres from 'postgres'
import { runMigrations } from '../src/db/migrate'

const databaseUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/order_api_test'
const databaseName = decodeURIComponent(new URL(databaseUrl).pathname.slice(1))
if (!databaseName.endsWith('_test'))
  throw new Error(`Refusing to reset ${databaseName}: test database names end in _test`)

// Concurrency tests fire hundreds of requests on a shared 2-core machine; no test asserts a time.
setDefaultTimeout(60_000)

Object.assign(process.env, {
  NODE_ENV: 'test',
  DATABASE_URL: databaseUrl,
  DATABASE_POOL_SIZE: '10',
  REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
  JWT_SECRET: 'test-only-secret-0123456789abcdef0123456789',
  JWT_EXPIRES_IN: '1h',
  ADMIN_EMAIL: 'seed-admin@example.com',
  ADMIN_PASSWORD: 'seed-admin-password',
  QUEUE_PREFIX: `order-api-test-${process.pid}`,
  LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
  LOG_PRETTY: '0',
  // In-process tests share one client address; the rate-limit tests start servers with low limits.
  RATE_LIMIT_AUTH_MAX: '1000000',
  TRUST_PROXY: 'false',
  CORS_ORIGINS: '',
  WORKER_METRICS_PORT: '0',
})

const maintenance = new URL(databaseUrl)
maintenance.pathname = '/postgres'
const admin = postgres(maintenance.toString(), { max: 1, onnotice: () => {} })
await admin`DROP DATABASE IF EXISTS ${admin(databaseName)} WITH (FORCE)`
await admin.end()
await runMigrations(databaseUrl)
