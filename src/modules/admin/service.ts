import { sql } from '../../db/client'
import { JOB_STATES, QUEUE_NAMES, type QueueName } from '../../outbox/definitions'
import { queues as producerQueues } from '../../outbox/queues'
import { HttpError } from '../../lib/errors'

const redisUnavailable = () => new HttpError(503, 'Redis unavailable, try again later')

async function outboxBacklog() {
  const [row] = await sql<{ backlog: number; oldest_seconds: number | null }[]>`
    SELECT count(*)::int AS backlog, extract(epoch FROM now() - min(created_at))::float8 AS oldest_seconds
    FROM outbox WHERE sent_at IS NULL`
  return { backlog: row!.backlog, oldest_pending_seconds: row!.oldest_seconds }
}

export async function queueOverview() {
  const queues = producerQueues()
  // Any failure of the Redis half is Redis being unavailable; a Postgres failure maps as usual.
  const [counts, outbox] = await Promise.all([
    Promise.all(QUEUE_NAMES.map(async (name) => [name, await queues[name].getJobCounts(...JOB_STATES)] as const)).catch(
      () => {
        throw redisUnavailable()
      },
    ),
    outboxBacklog(),
  ])
  const perQueue = Object.fromEntries(
    counts.map(([name, jobCounts]) => [
      name,
      Object.fromEntries(JOB_STATES.map((state) => [state, jobCounts[state] ?? 0])),
    ]),
  ) as Record<QueueName, Record<(typeof JOB_STATES)[number], number>>
  return { queues: perQueue, outbox }
}

/** Moves every failed job of a queue back to waiting; returns how many there were. */
export async function retryFailed(name: QueueName) {
  const queue = producerQueues()[name]
  try {
    const failed = await queue.getFailedCount()
    if (failed) await queue.retryJobs({ state: 'failed', count: 1000 })
    return { queue: name, retried: failed }
  } catch {
    throw redisUnavailable()
  }
}
