import { Type as t, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { readFileSync } from 'node:fs'

// Bun loads `.env` into process.env before any module runs, so reading
// process.env here covers both the real environment and the file.

const DURATION = '^\\d+(\\.\\d+)?\\s*(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|weeks?)?$'

// host:port, or a redis:// or rediss:// URL of one (credentials percent-encoded).
const CLUSTER_NODE = '(rediss?://([^\\s,/@]*@)?)?[^\\s,/@]+:\\d{1,5}'

const SECONDS_PER_UNIT: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 }

/** Seconds in a duration that matched DURATION: a bare number is seconds, `15m` minutes and so on. */
export function durationSeconds(duration: string): number {
  const [, amount, unit = 's'] = duration.match(/^(\d+(?:\.\d+)?)\s*([a-z])?/)!
  return Math.round(Number(amount) * SECONDS_PER_UNIT[unit]!)
}

/** Values that ship in docs and examples and so must never sign production tokens. */
export const PLACEHOLDER_SECRETS = new Set([
  'change-me',
  'changeme',
  'secret',
  'super_secret_change_me',
  'dev-secret-change-me-in-production-0000',
])

const EnvSchema = t.Object({
  NODE_ENV: t.Union([t.Literal('development'), t.Literal('production'), t.Literal('test')], { default: 'development' }),
  PORT: t.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  DATABASE_URL: t.String({ pattern: '^postgres(ql)?://', default: 'postgres://postgres@127.0.0.1:5432/order_api' }),
  DATABASE_POOL_SIZE: t.Integer({ minimum: 1, maximum: 200, default: 10 }),
  REDIS_URL: t.String({ pattern: '^rediss?://', default: 'redis://127.0.0.1:6379' }),
  // A Redis Cluster instead: some of its nodes, comma-separated, as host:port or
  // redis[s]://[user:password@]host:port (the first one's credentials serve all). REDIS_URL is then ignored.
  REDIS_CLUSTER_NODES: t.Optional(t.String({ pattern: `^${CLUSTER_NODE}(,${CLUSTER_NODE})*$` })),
  JWT_SECRET: t.String({ minLength: 1 }),
  // Access tokens are short-lived: a session lives on through its refresh token.
  JWT_EXPIRES_IN: t.String({ pattern: DURATION, default: '15m' }),
  REFRESH_TOKEN_TTL: t.String({ pattern: DURATION, default: '30d' }),
  // A spent refresh token is kept this long: presented again meanwhile, it revokes its session
  // (reuse detection); after it, it is merely unknown.
  SPENT_REFRESH_TOKEN_RETENTION: t.String({ pattern: DURATION, default: '7d' }),
  ADMIN_EMAIL: t.Optional(t.String({ minLength: 3 })),
  ADMIN_PASSWORD: t.Optional(t.String({ minLength: 8, maxLength: 128 })),
  QUEUE_PREFIX: t.String({ minLength: 1, pattern: '^[A-Za-z0-9_:{}-]+$', default: 'order-api' }),
  LOG_LEVEL: t.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => t.Literal(level)),
    { default: 'info' },
  ),
  WORKER_CONCURRENCY: t.Integer({ minimum: 1, maximum: 1000, default: 10 }),
  // How long a worker's lock on a job lasts; a job whose worker died is retried after this.
  // The worker's own /metrics and /health (0 picks a free port).
  WORKER_METRICS_PORT: t.Integer({ minimum: 0, maximum: 65535, default: 9464 }),
  // When set, the API's and the worker's /metrics answer only `Authorization: Bearer <token>`.
  METRICS_TOKEN: t.Optional(t.String({ minLength: 16 })),
  WORKER_LOCK_DURATION_MS: t.Integer({ minimum: 500, maximum: 600_000, default: 30_000 }),
  // The reconciler: work whose job is gone (Redis lost it) or spent with its effect still
  // missing counts as lost once it is this old, and is looked for this often.
  RECONCILE_AFTER_SECONDS: t.Integer({ minimum: 1, maximum: 86_400, default: 300 }),
  RECONCILE_INTERVAL_SECONDS: t.Integer({ minimum: 1, maximum: 3_600, default: 60 }),
  // Failed jobs stay (for operators, in Bull Board) this many days, and at most this many per queue.
  FAILED_JOB_RETENTION_DAYS: t.Integer({ minimum: 1, maximum: 3650, default: 30 }),
  // The catalogue's change feed is read within seconds; a poll 5 minutes late counts all changed.
  PRODUCT_CHANGES_RETENTION_MINUTES: t.Integer({ minimum: 10, maximum: 10_080, default: 15 }),
  FAILED_JOB_RETENTION_COUNT: t.Integer({ minimum: 1, maximum: 10_000_000, default: 10_000 }),
  // Optional: send confirmations over SMTP (smtp://user:pass@host:587) instead of only recording them.
  SMTP_URL: t.Optional(t.String({ pattern: '^smtps?://' })),
  MAIL_FROM: t.String({ minLength: 3, default: 'Order API <orders@example.com>' }),
  // Login and register attempts per client address per window, counted in Redis (all replicas).
  RATE_LIMIT_AUTH_MAX: t.Integer({ minimum: 1, default: 100 }),
  RATE_LIMIT_AUTH_WINDOW_SECONDS: t.Integer({ minimum: 1, default: 60 }),
  // A delivered order may be returned for this many days after delivered_at.
  RETURN_WINDOW_DAYS: t.Integer({ minimum: 0, maximum: 3650, default: 30 }),
  // An order export (CSV) can be downloaded for this many hours after it was asked for.
  EXPORT_TTL_HOURS: t.Integer({ minimum: 1, maximum: 8760, default: 24 }),
  // Catalogue reads no cached answer could serve, per client address per window (all replicas).
  RATE_LIMIT_SEARCH_MAX: t.Integer({ minimum: 1, default: 600 }),
  RATE_LIMIT_SEARCH_WINDOW_SECONDS: t.Integer({ minimum: 1, default: 60 }),
  // Memory for the catalogue cache per API process, all parts together.
  CATALOGUE_CACHE_MB: t.Integer({ minimum: 1, maximum: 65_536, default: 32 }),
  // The longest a public catalogue query may run; past it the request gets 503 and Retry-After.
  CATALOGUE_STATEMENT_TIMEOUT_MS: t.Integer({ minimum: 10, maximum: 600_000, default: 2_000 }),
  // Behind reverse proxies: `true` (one) or how many proxies append to X-Forwarded-For.
  TRUST_PROXY: t.String({ pattern: '^(true|false|[0-9])$', default: 'false' }),
  // Outbound webhooks: an attempt's timeout, attempts per delivery, the first retry's delay
  // (doubling, with jitter), and after how many failed deliveries in a row an endpoint is disabled.
  WEBHOOK_TIMEOUT_MS: t.Integer({ minimum: 100, maximum: 120_000, default: 10_000 }),
  WEBHOOK_MAX_ATTEMPTS: t.Integer({ minimum: 1, maximum: 50, default: 8 }),
  WEBHOOK_BACKOFF_MS: t.Integer({ minimum: 1, maximum: 3_600_000, default: 30_000 }),
  WEBHOOK_DISABLE_AFTER: t.Integer({ minimum: 1, maximum: 10_000, default: 20 }),
  // `true` lets webhooks target loopback and private addresses (local development, tests).
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: t.Boolean({ default: false }),
  // Comma-separated origins allowed to call the API from a browser (empty: same origin only; * for any).
  CORS_ORIGINS: t.String({ default: '' }),
  // OpenTelemetry: the standard variables, read by its SDK; checked here so a typo fails at start.
  // No endpoint: no traces are made or sent.
  OTEL_EXPORTER_OTLP_ENDPOINT: t.Optional(t.String({ pattern: '^https?://' })),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: t.Optional(t.String({ pattern: '^https?://' })),
  OTEL_EXPORTER_OTLP_PROTOCOL: t.Optional(
    t.Union([t.Literal('http/protobuf'), t.Literal('http/json'), t.Literal('grpc')]),
  ),
  OTEL_SERVICE_NAME: t.Optional(t.String({ minLength: 1 })),
  OTEL_TRACES_SAMPLER: t.Optional(
    t.Union(
      [
        'always_on',
        'always_off',
        'traceidratio',
        'parentbased_always_on',
        'parentbased_always_off',
        'parentbased_traceidratio',
      ].map((sampler) => t.Literal(sampler)),
    ),
  ),
  OTEL_TRACES_SAMPLER_ARG: t.Optional(t.String({ pattern: '^(0(\\.\\d+)?|1(\\.0+)?)$' })),
})

export type Config = Static<typeof EnvSchema>

export class ConfigError extends Error {}

/**
 * Variables that may instead be read from a file, as Docker and Swarm secrets are mounted:
 * `JWT_SECRET_FILE=/run/secrets/x` reads JWT_SECRET from that file (one trailing newline dropped).
 */
const FILE_VARIABLES = [
  'JWT_SECRET',
  'ADMIN_PASSWORD',
  'DATABASE_URL',
  'REDIS_URL',
  'REDIS_CLUSTER_NODES',
  'SMTP_URL',
  'METRICS_TOKEN',
] as const

function fromFile(name: string, path: string) {
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '')
  } catch (error) {
    throw new ConfigError(`Configuration error: ${name}_FILE cannot be read (${(error as NodeJS.ErrnoException).code})`)
  }
}

/**
 * On a Redis Cluster every key of a queue must be in one hash slot (BullMQ's scripts touch several):
 * the prefix's hash tag, its first `{…}`, puts them there. A prefix without one is wrapped whole.
 */
export function hashTagged(prefix: string) {
  const open = prefix.indexOf('{')
  const close = prefix.indexOf('}', open + 1)
  if (open >= 0 && close > open + 1) return prefix
  if (prefix.includes('{') || prefix.includes('}'))
    throw new ConfigError('Configuration error: QUEUE_PREFIX has braces but no hash tag (a non-empty {…})')
  return `{${prefix}}`
}

/** Parses an environment into a Config, or throws one ConfigError naming the bad variable. */
export function parseConfig(env: Record<string, string | undefined>): Config {
  const raw: Record<string, unknown> = {}
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = env[key]
    if (value !== undefined && value !== '') raw[key] = value
  }
  for (const name of FILE_VARIABLES) {
    const path = env[`${name}_FILE`]
    if (!path) continue
    if (raw[name] !== undefined) throw new ConfigError(`Configuration error: set ${name} or ${name}_FILE, not both`)
    raw[name] = fromFile(name, path)
  }
  const converted = Value.Convert(EnvSchema, Value.Default(EnvSchema, raw))
  const firstError = Value.Errors(EnvSchema, converted).First()
  if (firstError) {
    const name = firstError.path.split('/')[1] ?? firstError.path
    const problem = raw[name] === undefined ? 'is required' : `is invalid (${firstError.message})`
    throw new ConfigError(`Configuration error: ${name} ${problem}`)
  }
  const config = converted as Config
  if (config.REDIS_CLUSTER_NODES !== undefined) config.QUEUE_PREFIX = hashTagged(config.QUEUE_PREFIX)
  if (config.NODE_ENV === 'production') {
    if (config.JWT_SECRET.length < 32)
      throw new ConfigError('Configuration error: JWT_SECRET must be at least 32 characters in production')
    if (PLACEHOLDER_SECRETS.has(config.JWT_SECRET))
      throw new ConfigError('Configuration error: JWT_SECRET is a known placeholder; set a random secret')
  }
  return config
}

function loadConfig(): Config {
  try {
    return parseConfig(process.env)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    console.error(error.message)
    process.exit(1)
  }
}

export const config = loadConfig()
