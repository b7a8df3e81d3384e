import { UnrecoverableError } from 'bullmq'
import { config } from '../config'
import { sql } from '../db/client'
import { logger } from '../lib/logger'
import { deleteExpiredIdempotencyKeys } from '../modules/orders/place'
import { deleteRelayedOutboxRows } from './outbox'
import type { AuditEntry, AuditPayload } from './definitions'
import type { Mailer } from './mailer'

type OrderForConfirmation = { id: number; status: string; total_cents: string; user_id: number; email: string }

const formatCents = (cents: number) => `${(cents / 100).toFixed(2)}`
const dedupeKey = (orderId: number) => `order-confirmation:${orderId}`

/** An order whose confirmation could not be done in this run; `final` ones are never retried. */
export type ConfirmationFailure = { orderId: number; error: Error; final: boolean }

/**
 * Sends each order's confirmation once and moves the orders pending → confirmed, in a few
 * set-based statements for the whole list.
 *
 * A notification row is claimed before its message goes out and marked sent right after, so a
 * second run (retry, re-relay, or a stalled job picked up while the first run is still alive)
 * never sends again. A claim left by a run that died before sending is taken over once it is
 * older than a job lock. Orders that fail (a live claim elsewhere, a failed send, a missing
 * order) are returned, and the others are confirmed regardless.
 */
export async function confirmOrders(orderIds: number[], mailer: Mailer) {
  const failures: ConfirmationFailure[] = []
  const orders = await sql<OrderForConfirmation[]>`
    SELECT o.id, o.status, o.total_cents, u.id AS user_id, u.email
    FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = ANY(${orderIds}::int[]) ORDER BY o.id`
  const found = new Set(orders.map((order) => order.id))
  for (const orderId of orderIds)
    if (!found.has(orderId))
      failures.push({ orderId, error: new Error(`Order ${orderId} does not exist`), final: true })

  // A cancellation that got there first wins: nothing is sent for a cancelled order.
  const open = orders.filter((order) => order.status !== 'cancelled')
  const messages = new Map(
    open.map((order) => [
      order.id,
      {
        to: order.email,
        subject: `Your order #${order.id} is confirmed`,
        text: `Thank you for your order #${order.id}. Total: ${formatCents(Number(order.total_cents))}.`,
      },
    ]),
  )
  const claimed = await sql<{ id: number; order_id: number }[]>`
    INSERT INTO notifications (dedupe_key, user_id, order_id, transport, recipient, subject, body)
    SELECT * FROM unnest(${open.map((o) => dedupeKey(o.id))}::text[], ${open.map((o) => o.user_id)}::int[],
      ${open.map((o) => o.id)}::int[], ${open.map(() => mailer.transport)}::text[],
      ${open.map((o) => messages.get(o.id)!.to)}::text[], ${open.map((o) => messages.get(o.id)!.subject)}::text[],
      ${open.map((o) => messages.get(o.id)!.text)}::text[])
    ON CONFLICT (dedupe_key) DO UPDATE SET claimed_at = now()
      WHERE notifications.sent_at IS NULL
        AND notifications.claimed_at < now() - make_interval(secs => ${config.WORKER_LOCK_DURATION_MS / 1000})
    RETURNING id, order_id`

  const delivered = await Promise.allSettled(claimed.map((claim) => mailer.deliver(messages.get(claim.order_id)!)))
  const sent = claimed.filter((_, i) => delivered[i]!.status === 'fulfilled')
  const unsent = claimed.filter((_, i) => delivered[i]!.status === 'rejected')
  for (const [i, claim] of claimed.entries()) {
    const result = delivered[i]!
    if (result.status === 'rejected')
      failures.push({ orderId: claim.order_id, error: result.reason as Error, final: false })
  }

  const claimedIds = new Set(claimed.map((claim) => claim.order_id))
  const notClaimed = open.filter((order) => !claimedIds.has(order.id)).map((order) => order.id)
  const alreadySent = notClaimed.length
    ? (
        await sql<{ order_id: number }[]>`
          SELECT order_id FROM notifications WHERE dedupe_key = ANY(${notClaimed.map(dedupeKey)}::text[]) AND sent_at IS NOT NULL`
      ).map((row) => row.order_id)
    : []
  const sentElsewhere = new Set(alreadySent)
  for (const orderId of notClaimed)
    if (!sentElsewhere.has(orderId))
      failures.push({
        orderId,
        error: new Error(`Order ${orderId}: its confirmation is being sent by another run`),
        final: false,
      })

  // Sends recorded, claims of failed sends released (so a retry may send at once), and the
  // orders confirmed: conditional on the status, so a cancellation is never overwritten.
  const confirmed = [...sent.map((claim) => claim.order_id), ...alreadySent]
  await sql`
    WITH sent AS (
      UPDATE notifications SET sent_at = now() WHERE id = ANY(${sent.map((claim) => claim.id)}::int[])
    ),
    released AS (
      UPDATE notifications SET claimed_at = '-infinity' WHERE id = ANY(${unsent.map((claim) => claim.id)}::int[])
    )
    UPDATE orders SET status = 'confirmed', updated_at = now()
    WHERE id = ANY(${confirmed}::int[]) AND status = 'pending'`
  logger.debug({ orders: orderIds.length, sent: sent.length, failed: failures.length }, 'orders confirmed')
  return { sent: sent.length, alreadySent: alreadySent.length, skipped: orders.length - open.length, failures }
}

/** One order's confirmation, failing as BullMQ expects when it cannot be done now. */
export async function confirmOrder({ orderId }: { orderId: number }, mailer: Mailer) {
  const result = await confirmOrders([orderId], mailer)
  const [failure] = result.failures
  if (failure) throw failure.final ? new UnrecoverableError(failure.error.message) : failure.error
  if (result.skipped) return { outcome: 'skipped: order cancelled' }
  return { outcome: result.sent ? 'sent' : 'already sent' }
}

/**
 * Writes the audit rows of many jobs in one statement; each entry's key (its outbox row) makes
 * a second run a no-op. (JSON is passed as text: Drizzle replaces postgres.js's JSON serializer
 * on the shared client.)
 */
export async function writeAudits(entries: AuditEntry[]) {
  await sql`
    INSERT INTO audit_logs (job_key, actor_id, action, entity, entity_id, details)
    SELECT * FROM unnest(${entries.map((e) => e.key)}::text[], ${entries.map((e) => e.actorId)}::int[],
      ${entries.map((e) => e.action)}::text[], ${entries.map((e) => e.entity)}::text[],
      ${entries.map((e) => e.entityId)}::int[], ${entries.map((e) => JSON.stringify(e.details))}::jsonb[])
    ON CONFLICT (job_key) DO NOTHING`
}

export const writeAudit = (payload: AuditPayload, key: string) => writeAudits([{ ...payload, key }])

/**
 * Idempotency keys past their 24 h window (ignored on read anyway) and outbox rows relayed more
 * than a week ago go, so that neither table grows without bound.
 */
export async function housekeeping() {
  const [keys, outboxRows] = await Promise.all([deleteExpiredIdempotencyKeys(), deleteRelayedOutboxRows()])
  if (keys || outboxRows) logger.info({ keys, outboxRows }, 'housekeeping done')
  return { keys, outboxRows }
}
