import { Queue } from 'bullmq'
import IORedis from 'ioredis'
import { config } from '../config'
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

export async function pingRedis(timeoutMs = 1_000): Promise<boolean> {
  const { connection } = producer()
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timeout')), timeoutMs)
  })
  try {
    // Right after start-up the connection may still be opening: wait for it, within the timeout.
    if (connection.status !== 'ready')
      await Promise.race([new Promise((ready) => connection.once('ready', ready)), timeout])
    const reply = await Promise.race([connection.ping(), timeout])
    return reply === 'PONG'
  } catch {
    return false
  } finally {
    clearTimeout(timer)
  }
}
