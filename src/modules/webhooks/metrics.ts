import client from 'prom-client'
import { sql } from '../../db/client'
import { workerRegistry } from '../../lib/worker-metrics'

/** Counted by the worker's deliveries. */
export const webhookAttempts = new client.Counter({
  name: 'webhook_attempts_total',
  help: 'Webhook delivery attempts, by outcome (succeeded, retrying, failed: out of attempts, gone: 410, skipped: endpoint disabled)',
  labelNames: ['outcome'] as const,
  registers: [workerRegistry],
})

/** webhook_endpoints_auto_disabled: endpoints the deliveries turned off, sampled when Prometheus scrapes. */
export function registerWebhookGauges(registry: client.Registry) {
  new client.Gauge({
    name: 'webhook_endpoints_auto_disabled',
    help: 'Webhook endpoints disabled automatically (410 Gone, or WEBHOOK_DISABLE_AFTER failed deliveries in a row) and not enabled again',
    registers: [registry],
    async collect() {
      this.reset()
      const rows = await sql<{ count: number }[]>`
        SELECT count(*)::int AS count FROM webhook_endpoints WHERE NOT enabled AND disabled_reason IS NOT NULL`.catch(
        () => undefined,
      )
      if (rows) this.set(rows[0]?.count ?? 0)
    },
  })
}
