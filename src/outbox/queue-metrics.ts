import client from 'prom-client'
import { sql } from '../db/client'
import { JOB_STATES, QUEUE_NAMES } from './definitions'
import { queues } from './queues'
import { workerRegistry } from '../lib/worker-metrics'

/** Counted by the worker's reconciler. */
export const reconciledItems = new client.Counter({
  name: 'reconciled_items_total',
  help: 'Outbox work handed to BullMQ again by the reconciler because its job was lost or spent, by kind (queue, or unrelayed)',
  labelNames: ['kind'] as const,
  registers: [workerRegistry],
})

/** The outbox backlog, its oldest row's age and the queue depths, sampled when Prometheus scrapes `registry`. */
export function registerQueueGauges(registry: client.Registry) {
  // Absent while Postgres does not answer (readiness_check_up says so): the rest is still served.
  new client.Gauge({
    name: 'outbox_backlog',
    help: 'Outbox rows not yet handed to BullMQ',
    registers: [registry],
    async collect() {
      this.reset()
      const rows = await sql<
        { backlog: number }[]
      >`SELECT count(*)::int AS backlog FROM outbox WHERE sent_at IS NULL`.catch(() => undefined)
      if (rows) this.set(rows[0]?.backlog ?? 0)
    },
  })
  new client.Gauge({
    name: 'outbox_oldest_age_seconds',
    help: 'How long the oldest outbox row not yet handed to BullMQ has waited (0: none waits)',
    registers: [registry],
    async collect() {
      this.reset()
      // Reads the backlog only (the unsent rows' partial index), as outbox_backlog does.
      const rows = await sql<{ age: number | null }[]>`
        SELECT extract(epoch FROM now() - min(created_at))::float8 AS age FROM outbox WHERE sent_at IS NULL`.catch(
        () => undefined,
      )
      if (rows) this.set(Math.max(0, rows[0]?.age ?? 0))
    },
  })

  new client.Gauge({
    name: 'queue_jobs',
    help: 'BullMQ jobs per queue and state (absent while Redis is unreachable)',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
    async collect() {
      this.reset()
      const open = queues()
      await Promise.all(
        QUEUE_NAMES.map(async (name) => {
          const counts = await open[name].getJobCounts(...JOB_STATES).catch(() => undefined)
          for (const state of JOB_STATES) if (counts) this.set({ queue: name, state }, counts[state] ?? 0)
        }),
      )
    },
  })
}
