import { DelayedError, type Job } from 'bullmq'
import { QUEUES, WEBHOOK_BACKOFF, WebhookDeliveryJob } from '../../outbox/definitions'
import { type EffectChecks, payloadInt } from '../../outbox/reconcile'
import {
  checked,
  type HousekeepingTasks,
  isLastAttempt,
  type JobContext,
  type QueueHandler,
} from '../../outbox/workers'
import { backoffMs, deliverWebhook, endpointConcurrency, RetryLater } from './delivery'
import { deleteOldEvents } from './service'

/**
 * One attempt of a webhook delivery. An endpoint already at its concurrency in this process
 * puts the job back for a moment, freeing the slot for other endpoints' deliveries.
 */
async function webhookDelivery(job: Job, { token, concurrency }: JobContext) {
  const { deliveryId } = checked(job, WebhookDeliveryJob)
  const attempt = { number: job.attemptsMade + 1, last: isLastAttempt(job) }
  if ((await deliverWebhook(deliveryId, attempt, endpointConcurrency(concurrency))) === 'busy') {
    await job.moveToDelayed(Date.now() + 250 + Math.random() * 250, token)
    throw new DelayedError()
  }
}

/** Deliveries have a worker and slots of their own: a slow endpoint never holds up confirmations. */
export const webhookJobs: QueueHandler[] = [
  {
    queue: QUEUES.webhooks,
    process: webhookDelivery,
    settings: {
      backoffStrategy: (attemptsMade: number, type?: string, error?: Error) =>
        type === WEBHOOK_BACKOFF && error instanceof RetryLater ? error.delayMs : backoffMs(attemptsMade),
    },
  },
]

/** Events older than 30 days, with their deliveries once none is pending. */
export const webhookHousekeeping: HousekeepingTasks = { events: deleteOldEvents }

/** For the reconciler: a delivery's job has had its effect once it is no longer pending (sent, given up, or deleted with its event). */
export const webhookEffects: EffectChecks = {
  [QUEUES.webhooks]: (row) => `NOT EXISTS (
    SELECT 1 FROM webhook_deliveries d
    WHERE d.id = ${payloadInt(`${row}.payload->>'deliveryId'`)} AND d.status = 'pending')`,
}
