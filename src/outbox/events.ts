import type { Static } from '@sinclair/typebox'
import type { Transaction } from '../db/client'
import { events } from '../db/schema'
import { enumOf } from '../lib/model'
import { currentTraceCarrier } from '../lib/tracing'

/**
 * The domain's event vocabulary: what can happen to an order, a product or a return. The same names are
 * the audit log's actions and the webhook event types.
 */
export const CHANGES = [
  'order.placed',
  'order.confirmed',
  'order.processing',
  'order.shipped',
  'order.delivered',
  'order.cancelled',
  'product.created',
  'product.updated',
  'product.deleted',
  'product.low_stock',
  'return.requested',
  'return.received',
  'return.rejected',
] as const

export const AuditAction = enumOf(CHANGES)
export type AuditAction = Static<typeof AuditAction>

/**
 * Writes an event inside the caller's transaction; the database fans it out to the subscribed
 * webhook endpoints as it is written (see the `events_fan_out` trigger).
 */
export async function recordEvent(tx: Transaction, type: string, data: object, orderId?: number) {
  await tx.insert(events).values({ type, payload: data, orderId, traceContext: currentTraceCarrier() })
}
