import { UnrecoverableError } from 'bullmq'
import { config } from '../config'
import { sql } from '../db/client'
import { logger } from '../lib/logger'
import { deleteExpiredIdempotencyKeys } from '../modules/orders/place'
import { deleteRelayedOutboxRows } from './outbox'
import type { AuditPayload, OrderConfirmationPayload } from './definitions'
import type { Mailer } from './mailer'

type OrderForConfirmation = { id: number; status: string; total_cents: string; user_id: number; email: string }

const formatCents = (cents: number) => `${(cents / 100).toFixed(2)}`

/**
 * Sends the order confirmation once and moves the order pending → confirmed.
 *
 * The notification row is claimed before the message goes out and marked sent right after, so
 * a second run (retry, re-relay, or a stalled job picked up while the first run is still
 * alive) never sends again. A claim left by a run that died before sending is taken over once
 * it is older than a job lock; a run that finds a live claim fails and is retried later.
 */
export async function confirmOrder({ orderId }: OrderConfirmationPayload, mailer: Mailer) {
  const dedupeKey = `order-confirmation:${orderId}`
  const [order] = await sql<OrderForConfirmation[]>`
    SELECT o.id, o.status, o.total_cents, u.id AS user_id, u.email
    FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = ${orderId}`
  if (!order) throw new UnrecoverableError(`Order ${orderId} does not exist`)
  if (order.status === 'cancelled') return { outcome: 'skipped: order cancelled' }

  const message = {
    to: order.email,
    subject: `Your order #${order.id} is confirmed`,
    text: `Thank you for your order #${order.id}. Total: ${formatCents(Number(order.total_cents))}.`,
  }
  const [claim] = await sql<{ id: number }[]>`
    INSERT INTO notifications (dedupe_key, user_id, order_id, transport, recipient, subject, body)
    VALUES (${dedupeKey}, ${order.user_id}, ${order.id}, ${mailer.transport}, ${message.to}, ${message.subject}, ${message.text})
    ON CONFLICT (dedupe_key) DO UPDATE SET claimed_at = now()
      WHERE notifications.sent_at IS NULL
        AND notifications.claimed_at < now() - make_interval(secs => ${config.WORKER_LOCK_DURATION_MS / 1000})
    RETURNING id`

  let outcome: 'sent' | 'already sent'
  if (claim) {
    try {
      await mailer.deliver(message)
    } catch (error) {
      // Not sent: release the claim so that the retry may send at once.
      await sql`UPDATE notifications SET claimed_at = '-infinity' WHERE id = ${claim.id}`
      throw error
    }
    await sql`UPDATE notifications SET sent_at = now() WHERE id = ${claim.id}`
    outcome = 'sent'
  } else {
    const [existing] = await sql<{ sent: boolean }[]>`
      SELECT sent_at IS NOT NULL AS sent FROM notifications WHERE dedupe_key = ${dedupeKey}`
    if (!existing?.sent) throw new Error(`Order ${orderId}: its confirmation is being sent by another run`)
    outcome = 'already sent'
  }

  // Conditional on the status, so a cancellation that got there first is never overwritten.
  await sql`UPDATE orders SET status = 'confirmed', updated_at = now() WHERE id = ${order.id} AND status = 'pending'`
  logger.debug({ orderId, outcome }, 'order confirmed')
  return { outcome }
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

/**
 * Idempotency keys past their 24 h window (ignored on read anyway) and outbox rows relayed more
 * than a week ago go, so that neither table grows without bound.
 */
export async function housekeeping() {
  const [keys, outboxRows] = await Promise.all([deleteExpiredIdempotencyKeys(), deleteRelayedOutboxRows()])
  if (keys || outboxRows) logger.info({ keys, outboxRows }, 'housekeeping done')
  return { keys, outboxRows }
}
