import { type Job, UnrecoverableError } from 'bullmq'
import { sql } from '../../db/client'
import { logger } from '../../lib/logger'
import {
  JOB_NAMES,
  OrderConfirmationJob,
  OrderConfirmationPayload,
  OrderNotificationPayload,
  QUEUES,
} from '../../outbox/definitions'
import { type EffectChecks, payloadInt } from '../../outbox/reconcile'
import { checked, type HousekeepingTasks, type JobContext, type QueueHandler } from '../../outbox/workers'
import { type ConfirmationFailure, formatCents, type Mailer, sendOnce, sendOneOnce } from '../notifications/service'
import { ordersConfirmed } from './metrics'
import { deleteExpiredIdempotencyKeys } from './place'
import { moveOrders } from './transition'

// The orders' background work, run by the worker: confirmations (a message, then pending →
// confirmed), and the shipped and delivered messages.

type OrderForConfirmation = { id: number; status: string; total_cents: string; user_id: number; email: string }

/**
 * Sends each order's confirmation once (see sendOnce) and moves the orders pending →
 * confirmed, in a few set-based statements for the whole list: the status change, its
 * history entry (no actor: the worker), its event and its audit row are one statement. Orders that
 * fail (a live claim elsewhere, a failed send, a missing order) are returned, and the others
 * are confirmed regardless. A cancellation that got there first wins: nothing is sent.
 */
export async function confirmOrders(orderIds: number[], mailer: Mailer) {
  const orders = await sql<OrderForConfirmation[]>`
    SELECT o.id, o.status, o.total_cents, u.id AS user_id, u.email
    FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = ANY(${orderIds}::int[]) ORDER BY o.id`
  const found = new Set(orders.map((order) => order.id))
  const missing: ConfirmationFailure[] = orderIds
    .filter((orderId) => !found.has(orderId))
    .map((orderId) => ({ orderId, error: new Error(`Order ${orderId} does not exist`), final: true }))

  const open = orders.filter((order) => order.status !== 'cancelled')
  const { sent, alreadySent, failures } = await sendOnce(
    open.map((order) => ({
      dedupeKey: `order-confirmation:${order.id}`,
      orderId: order.id,
      userId: order.user_id,
      message: {
        to: order.email,
        subject: `Your order #${order.id} is confirmed`,
        text: `Thank you for your order #${order.id}. Total: ${formatCents(Number(order.total_cents))}.`,
      },
    })),
    mailer,
  )

  // Only from pending (moveOrders), so a later status (a cancellation) is never overwritten.
  const moved = await moveOrders({ orderIds: [...sent, ...alreadySent], to: 'confirmed', by: 'worker' })
  const confirmed = moved.filter((order) => order.moved).length
  ordersConfirmed.inc(confirmed)
  logger.debug({ orders: orderIds.length, sent: sent.length, confirmed }, 'orders confirmed')
  return {
    sent: sent.length,
    alreadySent: alreadySent.length,
    skipped: orders.length - open.length,
    failures: [...missing, ...failures],
  }
}

const NOTIFICATIONS = {
  shipped: (order: { id: number; carrier: string | null; tracking_number: string | null }) => ({
    subject: `Your order #${order.id} has shipped`,
    text: `Your order #${order.id} is on its way with ${order.carrier}, tracking number ${order.tracking_number}.`,
  }),
  delivered: (order: { id: number }) => ({
    subject: `Your order #${order.id} has been delivered`,
    text: `Your order #${order.id} has been delivered. Thank you for shopping with us.`,
  }),
}

/** Tells the customer their order has shipped or been delivered, once (see sendOnce). */
export async function notifyOrder({ orderId, kind }: OrderNotificationPayload, mailer: Mailer) {
  const [order] = await sql<
    { id: number; user_id: number; email: string; carrier: string | null; tracking_number: string | null }[]
  >`
    SELECT o.id, o.user_id, u.email, o.carrier, o.tracking_number
    FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = ${orderId}`
  if (!order) throw new UnrecoverableError(`Order ${orderId} does not exist`)
  return sendOneOnce(
    {
      dedupeKey: `order-${kind}:${orderId}`,
      orderId,
      userId: order.user_id,
      message: { to: order.email, ...NOTIFICATIONS[kind](order) },
    },
    mailer,
  )
}

/** The error a one-order job fails with: retried later, or for good when retrying cannot help. */
export const jobError = (failure: ConfirmationFailure) =>
  failure.final ? new UnrecoverableError(failure.error.message) : failure.error

/**
 * A batch job whose orders partly failed: the failed ones go on as jobs of their own (retried,
 * and visible to operators, one order at a time) and the batch is done. A one-order job fails
 * as itself, so that BullMQ retries it.
 */
async function confirmationBatch(job: Job, { producers }: JobContext, mailer: Mailer) {
  const data = checked(job, OrderConfirmationJob, OrderConfirmationPayload)
  const orderIds = 'orderIds' in data ? data.orderIds : [data.orderId]
  const { failures } = await confirmOrders(orderIds, mailer)
  if (!failures.length) return
  if (orderIds.length === 1) throw jobError(failures[0]!)
  logger.warn({ jobId: job.id, orders: failures.map((f) => f.orderId) }, 'confirmations split off for retry')
  await producers[QUEUES.orderConfirmation].addBulk(
    failures.map((failure) => ({
      name: JOB_NAMES.orderConfirmation,
      data: { orderIds: [failure.orderId] },
      opts: { jobId: `${job.id}-order-${failure.orderId}` },
    })),
  )
}

/** The queues the orders consume. */
export const orderJobs = (mailer: Mailer): QueueHandler[] => [
  { queue: QUEUES.orderConfirmation, process: (job, context) => confirmationBatch(job, context, mailer) },
  { queue: QUEUES.orderNotification, process: (job) => notifyOrder(checked(job, OrderNotificationPayload), mailer) },
]

/** Idempotency keys past their 24 h window (ignored on read anyway). */
export const orderHousekeeping: HousekeepingTasks = { keys: deleteExpiredIdempotencyKeys }

const orderIdsOf = (row: string) => `coalesce(${row}.payload->'orderIds', jsonb_build_array(${row}.payload->'orderId'))`

/**
 * For the reconciler: when this module's jobs have had their effect.
 * - a confirmation: none of its orders is still pending (confirmed, or cancelled first);
 * - a notification: its message was sent, or the order is gone.
 */
export const orderEffects: EffectChecks = {
  [QUEUES.orderConfirmation]: (row) => `CASE WHEN jsonb_typeof(${orderIdsOf(row)}) <> 'array' THEN true
    ELSE NOT EXISTS (
      SELECT 1 FROM orders WHERE status = 'pending' AND id IN (
        SELECT ${payloadInt('x')} FROM jsonb_array_elements_text(${orderIdsOf(row)}) AS x)) END`,
  [QUEUES.orderNotification]: (row) => `EXISTS (
      SELECT 1 FROM notifications n WHERE n.sent_at IS NOT NULL
        AND n.dedupe_key = 'order-' || (${row}.payload->>'kind') || ':' || (${row}.payload->>'orderId'))
    OR NOT EXISTS (SELECT 1 FROM orders WHERE id = ${payloadInt(`${row}.payload->>'orderId'`)})`,
}
