import { Queue } from 'bullmq'
import IORedis from 'ioredis'
import { config } from '../config'
import { withTimeout } from '../lib/timeout'
import { DEFAULT_JOB_OPTIONS, QUEUE_NAMES, type QueueName } from './definitions'

/**
 * A connection for producers and health checks: with the offline queue off, a command fails at
 * once while Redis is down instead of piling up, so requests and the relay never hang on it.
 */
export const createProducerConnection = (url = config.REDIS_URL) =>
  new IORedis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2_000 })

/** Workers block on Redis and must retry forever (BullMQ requires maxRetriesPerRequest: null). */
export const createWorkerConnection = (url = config.REDIS_URL) => new IORedis(url, { maxRetriesPerRequest: null })

export type Queues = Record<QueueName, Queue>

let shared: { connection: IORedis; queues: Queues } | undefined

/** The API process's queues, created on first use. */
export function producer() {
  if (!shared) {
    const connection = createProducerConnection()
    connection.on('error', () => {}) // reconnects on its own; readiness and the relay report outages
    const queues = Object.fromEntries(
      QUEUE_NAMES.map((name) => [
        name,
        new Queue(name, { connection, prefix: config.QUEUE_PREFIX, defaultJobOptions: DEFAULT_JOB_OPTIONS }),
      ]),
    ) as Queues
    for (const queue of Object.values(queues)) queue.on('error', () => {})
    shared = { connection, queues }
  }
  return shared
}

export async function closeProducer() {
  if (!shared) return
  const { connection, queues } = shared
  shared = undefined
  await Promise.allSettled(Object.values(queues).map((queue) => queue.close()))
  connection.disconnect()
}

/**
 * Resolves once the shared connection is ready, or after `timeoutMs` (whichever is first).
 * With the offline queue off, a command sent while it is still (re)connecting fails at once.
 */
export async function whenRedisReady(timeoutMs: number): Promise<boolean> {
  const { connection } = producer()
  if (connection.status === 'ready') return true
  let timer: ReturnType<typeof setTimeout> | undefined
  let onReady: (() => void) | undefined
  const ready = await Promise.race([
    new Promise<boolean>((resolve) => connection.once('ready', (onReady = () => resolve(true)))),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
  ])
  clearTimeout(timer)
  if (onReady) connection.off('ready', onReady)
  return ready
}

export async function pingRedis(timeoutMs = 1_000): Promise<boolean> {
  try {
    if (!(await whenRedisReady(timeoutMs))) return false
    return (await withTimeout(producer().connection.ping(), timeoutMs, 'Redis ping timed out')) === 'PONG'
  } catch {
    return false
  }
}
