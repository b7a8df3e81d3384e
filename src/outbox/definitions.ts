import { Type as t, type Static } from '@sinclair/typebox'
import type { JobsOptions } from 'bullmq'
import { config } from '../config'
import { AuditAction } from './events'

// Queues, job names and payloads, declared once for the producer (API) and the consumer (worker).
// SQL cannot import them: the webhook fan-out trigger (migration 0007) writes `webhooks` /
// `webhook.delivery` itself, and a test (jobs.test.ts) fails if the two drift apart.

export const QUEUES = {
  orderConfirmation: 'order-confirmation',
  audit: 'audit',
  orderNotification: 'order-notification',
  housekeeping: 'housekeeping',
  webhooks: 'webhooks',
  returnNotification: 'return-notification',
  exports: 'exports',
} as const
export type QueueName = (typeof QUEUES)[keyof typeof QUEUES]

export const JOB_NAMES = {
  orderConfirmation: 'order.confirmation',
  audit: 'audit',
  orderNotification: 'order.notification',
  housekeeping: 'housekeeping',
  reconcile: 'reconcile',
  webhookDelivery: 'webhook.delivery',
  returnNotification: 'return.notification',
  exportBuild: 'export.build',
} as const
export const QUEUE_NAMES: QueueName[] = Object.values(QUEUES)

/** Each kind of job the features write to the outbox: its queue and its name, paired once. */
export const JOBS = {
  orderConfirmation: { queue: QUEUES.orderConfirmation, name: JOB_NAMES.orderConfirmation },
  audit: { queue: QUEUES.audit, name: JOB_NAMES.audit },
  orderNotification: { queue: QUEUES.orderNotification, name: JOB_NAMES.orderNotification },
  returnNotification: { queue: QUEUES.returnNotification, name: JOB_NAMES.returnNotification },
  webhookDelivery: { queue: QUEUES.webhooks, name: JOB_NAMES.webhookDelivery },
  exportBuild: { queue: QUEUES.exports, name: JOB_NAMES.exportBuild },
} as const
export type JobKind = keyof typeof JOBS

/** The job states operators watch, in /api/admin/queues and /metrics. */
export const JOB_STATES = ['waiting', 'active', 'delayed', 'completed', 'failed'] as const

// Payload schemas: the types for the producer, and what the worker checks a job against.
// A statement's outbox row carries all its orders or audit entries (OrderConfirmationJob,
// AuditJob below); the relay packs consecutive rows into batch jobs (see relay.ts), so that the
// worker confirms and audits many orders per round trip. The single shapes here are a row of one
// audit entry (keyed by its row) and what older APIs queued.
export const OrderConfirmationPayload = t.Object({ orderId: t.Integer({ minimum: 1 }) })
export type OrderConfirmationPayload = Static<typeof OrderConfirmationPayload>

export const AuditPayload = t.Object({
  actorId: t.Union([t.Integer({ minimum: 1 }), t.Null()]),
  action: AuditAction,
  entity: t.Union([t.Literal('order'), t.Literal('product'), t.Literal('return')]),
  entityId: t.Integer({ minimum: 1 }),
  details: t.Record(t.String(), t.Unknown()),
})
export type AuditPayload = Static<typeof AuditPayload>

/** A message to the customer about a change of their order after confirmation. */
export const OrderNotificationPayload = t.Object({
  orderId: t.Integer({ minimum: 1 }),
  kind: t.Union([t.Literal('shipped'), t.Literal('delivered')]),
})
export type OrderNotificationPayload = Static<typeof OrderNotificationPayload>

/** A message to the customer about their return: received or rejected. */
export const ReturnNotificationPayload = t.Object({
  returnId: t.Integer({ minimum: 1 }),
  kind: t.Union([t.Literal('received'), t.Literal('rejected')]),
})
export type ReturnNotificationPayload = Static<typeof ReturnNotificationPayload>

/** An export for the worker to build (a row of `exports`). */
export const ExportJob = t.Object({ exportId: t.Integer({ minimum: 1 }) })
export type ExportJob = Static<typeof ExportJob>

/** One attempt schedule of one webhook delivery (a row written by the events fan-out trigger). */
export const WebhookDeliveryJob = t.Object({ deliveryId: t.Integer({ minimum: 1 }) })
export type WebhookDeliveryJob = Static<typeof WebhookDeliveryJob>

/** The most outbox rows one job carries. */
export const MAX_ROWS_PER_JOB = 100

// A job carries a list. (Jobs queued by an API older than batch jobs carry the single payloads
// above: the worker takes both, so it can be upgraded first.)
export const OrderConfirmationJob = t.Object({
  orderIds: t.Array(t.Integer({ minimum: 1 }), { minItems: 1, maxItems: MAX_ROWS_PER_JOB }),
})
export type OrderConfirmationJob = Static<typeof OrderConfirmationJob>
/** An audit entry and its key (the fact's, or its outbox row's: modules/audit), which makes a second write a no-op. */
export const AuditEntry = t.Composite([AuditPayload, t.Object({ key: t.String({ minLength: 1, maxLength: 64 }) })])
export type AuditEntry = Static<typeof AuditEntry>
export const AuditJob = t.Object({ entries: t.Array(AuditEntry, { minItems: 1, maxItems: MAX_ROWS_PER_JOB }) })
export type AuditJob = Static<typeof AuditJob>

/**
 * Housekeeping and the reconciler run from BullMQ job schedulers on the housekeeping queue: once
 * per period for the whole cluster, whichever worker takes the job.
 */
export const HOUSEKEEPING_EVERY_MS = 10 * 60_000
export const SCHEDULER_IDS = { housekeeping: 'housekeeping', reconcile: 'reconcile' } as const

export type OutboxJob =
  | {
      queue: typeof QUEUES.orderConfirmation
      name: typeof JOB_NAMES.orderConfirmation
      payload: OrderConfirmationPayload
    }
  | { queue: typeof QUEUES.audit; name: typeof JOB_NAMES.audit; payload: AuditPayload }
  | { queue: typeof QUEUES.webhooks; name: typeof JOB_NAMES.webhookDelivery; payload: WebhookDeliveryJob }
  | { queue: typeof QUEUES.exports; name: typeof JOB_NAMES.exportBuild; payload: ExportJob }

/** BullMQ refuses integer-looking custom ids; the outbox id still makes a re-relay a no-op. */
export const jobIdForOutboxRow = (outboxId: string | number) => `outbox-${outboxId}`

/**
 * A webhook delivery's job is named after the delivery, not its outbox row: however many rows
 * ask for it (a manual retry writes one), one job per delivery is live at a time.
 */
export const jobIdForDelivery = (deliveryId: number) => `webhook-${deliveryId}`

/** A job carrying a run of outbox rows is named by its first and last row. */
export const jobIdForOutboxRows = (outboxIds: (string | number)[]) =>
  outboxIds.length === 1 ? jobIdForOutboxRow(outboxIds[0]!) : `outbox-${outboxIds[0]}-${outboxIds.at(-1)}`

export const DEFAULT_JOB_OPTIONS: JobsOptions = {
  attempts: 6,
  backoff: { type: 'exponential', delay: 1_000 },
  // Completed jobs stay a week, so that a late re-relay of the same id is still recognised.
  removeOnComplete: { age: 7 * 24 * 3600, count: 100_000 },
  // Exhausted jobs stay in the failed set for operators (Bull Board), for a bounded time and number.
  removeOnFail: { age: config.FAILED_JOB_RETENTION_DAYS * 24 * 3600, count: config.FAILED_JOB_RETENTION_COUNT },
}

/** The backoff strategy the worker registers for webhook deliveries (see webhooks/delivery.ts). */
export const WEBHOOK_BACKOFF = 'webhook'

/**
 * Webhook deliveries: WEBHOOK_MAX_ATTEMPTS attempts in all, the waits computed by the worker
 * (exponential with jitter from WEBHOOK_BACKOFF_MS, or the receiver's Retry-After).
 */
export const WEBHOOK_JOB_OPTIONS: JobsOptions = {
  ...DEFAULT_JOB_OPTIONS,
  attempts: config.WEBHOOK_MAX_ATTEMPTS,
  backoff: { type: WEBHOOK_BACKOFF },
}

export const jobOptionsFor = (queue: QueueName) =>
  queue === QUEUES.webhooks ? WEBHOOK_JOB_OPTIONS : DEFAULT_JOB_OPTIONS
