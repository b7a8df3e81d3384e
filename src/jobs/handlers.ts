import { UnrecoverableError } from 'bullmq'
import { sql } from '../db/client'
import { logger } from '../lib/logger'
import type { AuditPayload, OrderConfirmationPayload } from './definitions'
import type { Mailer } from './mailer'

type OrderForConfirmation = { id: number; status: string; total_cents: string; user_id: number; email: string }

const formatCents = (cents: number) => `${(cents / 100).toFixed(2)}`

/**
 * Sends the order confirmation once and moves the order pending → confirmed.
 * The notification's dedupe key makes a second run (retry, stalled job, re-relay) a no-op.
 */
export async function confirmOrder({ orderId }: OrderConfirmationPayload, mailer: Mailer) {
  const dedupeKey = `order-confirmation:${orderId}`
  const [order] = await sql<OrderForConfirmation[]>`
    SELECT o.id, o.status, o.total_cents, u.id AS user_id, u.email
    FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = ${orderId}`
  if (!order) throw new UnrecoverableError(`Order ${orderId} does not exist`)
  if (order.status === 'cancelled') return { outcome: 'skipped: order cancelled' }

  const [alreadySent] = await sql`SELECT 1 FROM notifications WHERE dedupe_key = ${dedupeKey}`
  const message = {
    to: order.email,
    subject: `Your order #${order.id} is confirmed`,
    text: `Thank you for your order #${order.id}. Total: ${formatCents(Number(order.total_cents))}.`,
  }
  if (!alreadySent) await mailer.deliver(message)

  await sql.begin(async (tx) => {
    await tx`
      INSERT INTO notifications (dedupe_key, user_id, order_id, transport, recipient, subject, body)
      VALUES (${dedupeKey}, ${order.user_id}, ${order.id}, ${mailer.transport}, ${message.to}, ${message.subject}, ${message.text})
      ON CONFLICT (dedupe_key) DO NOTHING`
    // Conditional on the status, so a cancellation that got there first is never overwritten.
    await tx`UPDATE orders SET status = 'confirmed', updated_at = now() WHERE id = ${order.id} AND status = 'pending'`
  })
  logger.debug({ orderId }, 'order confirmed')
  return { outcome: alreadySent ? 'already sent' : 'sent' }
}

/**
 * Writes one audit row per job; the job key makes a second run a no-op.
 * (JSON is passed as text: Drizzle replaces postgres.js's JSON serializer on the shared client.)
 */
export async function writeAudit(payload: AuditPayload, jobKey: string) {
  await sql`
    INSERT INTO audit_logs (job_key, actor_id, action, entity, entity_id, details)
    VALUES (${jobKey}, ${payload.actorId}, ${payload.action}, ${payload.entity}, ${payload.entityId}, ${JSON.stringify(payload.details)}::jsonb)
    ON CONFLICT (job_key) DO NOTHING`
}
