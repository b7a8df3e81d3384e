import client from 'prom-client'
import { sql } from '../db/client'
import { JOB_STATES, QUEUE_NAMES } from './definitions'
import { queues } from './queues'

/** The outbox backlog and the queue depths, sampled when Prometheus scrapes `registry`. */
export function registerQueueGauges(registry: client.Registry) {
  new client.Gauge({
    name: 'outbox_backlog',
    help: 'Outbox rows not yet handed to BullMQ',
    registers: [registry],
    async collect() {
      const [row] = await sql<{ backlog: number }[]>`SELECT count(*)::int AS backlog FROM outbox WHERE sent_at IS NULL`
      this.set(row?.backlog ?? 0)
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
