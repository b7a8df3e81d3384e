import IORedis, { type Cluster, type RedisOptions } from 'ioredis'
import { config } from '../config'
import { logger } from './logger'
import { withTimeout } from './timeout'

/** One Redis server, or a Redis Cluster (REDIS_CLUSTER_NODES): the rest of the code takes either. */
export type RedisConnection = IORedis | Cluster

/**
 * REDIS_CLUSTER_NODES: `host:port` entries, or `redis[s]://[user:password@]host:port` URLs. A
 * cluster has one set of users: the first entry's credentials (and TLS, for rediss://) serve
 * every node, the ones named and the ones discovered.
 */
function clusterSettings(list: string) {
  const urls = list.split(',').map((entry) => new URL(entry.includes('://') ? entry : `redis://${entry}`))
  const first = urls[0]!
  return {
    nodes: urls.map((url) => ({ host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port) })),
    options: {
      username: decodeURIComponent(first.username) || undefined,
      password: decodeURIComponent(first.password) || undefined,
      tls: first.protocol === 'rediss:' ? {} : undefined,
    } satisfies RedisOptions,
  }
}
const cluster = config.REDIS_CLUSTER_NODES === undefined ? undefined : clusterSettings(config.REDIS_CLUSTER_NODES)

/**
 * A connection to `url`, or, when none is named and REDIS_CLUSTER_NODES is set, to the cluster
 * (REDIS_URL is then ignored), each node's connection made with `options`.
 */
function connect(url: string | undefined, { enableOfflineQueue, ...options }: RedisOptions): RedisConnection {
  if (url !== undefined || !cluster) return new IORedis(url ?? config.REDIS_URL, { enableOfflineQueue, ...options })
  return new IORedis.Cluster(cluster.nodes, { enableOfflineQueue, redisOptions: { ...cluster.options, ...options } })
}

/**
 * A connection for producers and health checks: with the offline queue off, a command fails at
 * once while Redis is down instead of piling up, so requests and the relay never hang on it.
 */
export const createProducerConnection = (url?: string) =>
  connect(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2_000 })

/** Workers block on Redis and must retry forever (BullMQ requires maxRetriesPerRequest: null). */
export const createWorkerConnection = (url?: string) => connect(url, { maxRetriesPerRequest: null })

/**
 * Pub/sub: retries forever. It does not re-subscribe on its own: the subscriber does so on
 * `ready`, so that it knows when it may have missed messages. (A cluster's subscription moves to
 * another node by itself when its node goes: the subscriber hears of that as `-node`.)
 */
export const createSubscriberConnection = () =>
  connect(undefined, { maxRetriesPerRequest: null, autoResubscribe: false })

const ERROR_LOG_INTERVAL_MS = 10_000

/**
 * Logs the `error` events of a Redis connection, queue or worker. They repeat on every
 * reconnect attempt during an outage, so one message is logged at most every 10 s.
 */
export function logRedisErrors(
  emitter: { on(event: 'error', listener: (error: Error) => void): unknown },
  source: string,
) {
  let last = { message: '', at: 0 }
  emitter.on('error', (error) => {
    const now = Date.now()
    if (error.message === last.message && now - last.at < ERROR_LOG_INTERVAL_MS) return
    last = { message: error.message, at: now }
    logger.warn({ err: error, source }, 'redis error')
  })
}

let shared: RedisConnection | undefined

/** The process's shared fail-fast connection (rate limits, health, queues), created on first use. */
export function redis(): RedisConnection {
  if (!shared) {
    shared = createProducerConnection()
    // It reconnects on its own; readiness and the outbox relay report the outage too.
    logRedisErrors(shared, 'connection')
  }
  return shared
}

export async function closeRedis() {
  const connection = shared
  shared = undefined
  connection?.disconnect()
}

/**
 * Resolves once the shared connection is ready, or after `timeoutMs` (whichever is first).
 * With the offline queue off, a command sent while it is still (re)connecting fails at once.
 */
export async function whenRedisReady(timeoutMs: number): Promise<boolean> {
  const connection = redis()
  if (connection.status === 'ready') return true
  let timer: ReturnType<typeof setTimeout> | undefined
  let onReady: (() => void) | undefined
  const ready = await Promise.race([
    new Promise<boolean>((resolve) => {
      onReady = () => resolve(true)
      connection.once('ready', onReady)
    }),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs)
    }),
  ])
  clearTimeout(timer)
  if (onReady) connection.off('ready', onReady)
  return ready
}

export async function pingRedis(timeoutMs = 1_000): Promise<boolean> {
  try {
    if (!(await whenRedisReady(timeoutMs))) return false
    return (await withTimeout(redis().ping(), timeoutMs, 'Redis ping timed out')) === 'PONG'
  } catch {
    return false
  }
}

/**
 * Logs a warning when Redis may evict keys under memory pressure: queued jobs would then vanish
 * (BullMQ's production guide asks for `maxmemory-policy noeviction`). Managed services that
 * refuse CONFIG are left alone.
 */
export async function warnUnlessNoEviction(connection: RedisConnection, source: string) {
  try {
    const [, policy] = (await withTimeout(
      connection.config('GET', 'maxmemory-policy'),
      5_000,
      'CONFIG GET',
    )) as string[]
    if (policy && policy !== 'noeviction')
      logger.warn(
        { source, maxmemoryPolicy: policy },
        'Redis maxmemory-policy is not noeviction: under memory pressure it may drop queued jobs',
      )
  } catch (error) {
    logger.debug({ err: error, source }, 'could not read Redis maxmemory-policy')
  }
}
