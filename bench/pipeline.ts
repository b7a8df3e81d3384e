// What `make bench` reads off the machine and the pipeline around an end-to-end order run:
// the machine's busy CPU, and orders placed, confirmed and still on their way.
import { Queue } from 'bullmq'
import { readFileSync } from 'node:fs'
import type postgres from 'postgres'
import { QUEUES } from '../src/outbox/definitions'
import { createProducerConnection } from '../src/lib/redis'

const CLOCK_TICKS_PER_SECOND = 100 // USER_HZ on Linux (getconf CLK_TCK)

/** Busy CPU of the whole machine (every core) since boot, in ms: everything but idle and iowait. */
export function machineBusyMs() {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
  const [user, nice, system, , , irq, softirq, steal] = fields as number[]
  return ((user! + nice! + system! + irq! + softirq! + (steal ?? 0)) * 1000) / CLOCK_TICKS_PER_SECOND
}

export type PipelineCounts = { orders: number; confirmed: number; backlog: number }

/** Orders placed and confirmed so far, and the backlog: outbox rows not yet relayed plus order jobs not yet done. */
export function pipelineCounter(db: postgres.Sql, redisUrl: string, prefix: string) {
  const connection = createProducerConnection(redisUrl)
  const queues = [QUEUES.orderConfirmation, QUEUES.audit].map((name) => new Queue(name, { connection, prefix }))
  return {
    async counts(): Promise<PipelineCounts> {
      const [[row], jobCounts] = await Promise.all([
        db<{ orders: number; confirmed: number; unsent: number }[]>`
          SELECT (SELECT count(*) FROM orders)::int AS orders,
                 (SELECT count(*) FROM orders WHERE status = 'confirmed')::int AS confirmed,
                 (SELECT count(*) FROM outbox WHERE sent_at IS NULL)::int AS unsent`,
        Promise.all(queues.map((queue) => queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized'))),
      ])
      const jobs = jobCounts.reduce((sum, counts) => sum + Object.values(counts).reduce((a, b) => a + b, 0), 0)
      return { orders: row!.orders, confirmed: row!.confirmed, backlog: row!.unsent + jobs }
    },
    async close() {
      await Promise.all(queues.map((queue) => queue.close()))
      connection.disconnect()
    },
  }
}
