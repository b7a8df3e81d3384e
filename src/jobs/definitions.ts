import type { JobsOptions } from 'bullmq'

// Queues, job names and payloads, declared once for the producer (API) and the consumer (worker).

export const QUEUES = {
  orderConfirmation: 'order-confirmation',
  audit: 'audit',
} as const
export type QueueName = (typeof QUEUES)[keyof typeof QUEUES]

export const JOB_NAMES = {
  orderConfirmation: 'order.confirmation',
  audit: 'audit',
} as const
export const QUEUE_NAMES: QueueName[] = Object.values(QUEUES)

/** The job states operators watch, in /api/admin/queues and /metrics. */
export const JOB_STATES = ['waiting', 'active', 'delayed', 'completed', 'failed'] as const

export type OrderConfirmationPayload = { orderId: number }

export type AuditAction = 'order.placed' | 'order.cancelled' | 'product.created' | 'product.updated' | 'product.deleted'
export type AuditPayload = {
  actorId: number | null
  action: AuditAction
  entity: 'order' | 'product'
  entityId: number
  details: Record<string, unknown>
}

export type OutboxJob =
  | {
      queue: typeof QUEUES.orderConfirmation
      name: typeof JOB_NAMES.orderConfirmation
      payload: OrderConfirmationPayload
    }
  | { queue: typeof QUEUES.audit; name: typeof JOB_NAMES.audit; payload: AuditPayload }

export const auditJob = (payload: AuditPayload): OutboxJob => ({ queue: QUEUES.audit, name: JOB_NAMES.audit, payload })

/** BullMQ refuses integer-looking custom ids; the outbox id still makes a re-relay a no-op. */
export const jobIdForOutboxRow = (outboxId: string | number) => `outbox-${outboxId}`

export const DEFAULT_JOB_OPTIONS: JobsOptions = {
  attempts: 6,
  backoff: { type: 'exponential', delay: 1_000 },
  // Completed jobs stay a week, so that a late re-relay of the same id is still recognised.
  removeOnComplete: { age: 7 * 24 * 3600, count: 100_000 },
  // Exhausted jobs stay in the failed set until an operator retries or removes them.
  removeOnFail: false,
}
