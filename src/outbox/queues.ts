import { Queue } from 'bullmq'
import { config } from '../config'
import { logRedisErrors, redis } from '../lib/redis'
import { jobOptionsFor, QUEUE_NAMES, type QueueName } from './definitions'

export type Queues = Record<QueueName, Queue>

let shared: Queues | undefined

/** The process's producer side of every queue, on the shared Redis connection, created on first use. */
export function queues(): Queues {
  shared ??= Object.fromEntries(
    QUEUE_NAMES.map((name) => {
      const queue = new Queue(name, {
        connection: redis(),
        prefix: config.QUEUE_PREFIX,
        defaultJobOptions: jobOptionsFor(name),
        // No BullMQ telemetry here: the relay hands each job the context of the rows it
        // carries (relay.ts), where BullMQ's would give the whole pass one request's.
      })
      logRedisErrors(queue, `queue ${name}`)
      return [name, queue]
    }),
  ) as Queues
  return shared
}

export async function closeQueues() {
  const open = shared
  shared = undefined
  if (open) await Promise.allSettled(Object.values(open).map((queue) => queue.close()))
}
