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

/** One name of the vocabulary: an event's type, an audit entry's action. */
export type Change = (typeof CHANGES)[number]

export const AuditAction = enumOf(CHANGES)
export type AuditAction = Static<typeof AuditAction>

/** The one event outside the vocabulary: sent to one endpoint on request, never fanned out. */
export const TEST_EVENT = 'webhook.test'

/**
 * Writes an event inside the caller's transaction; the database fans it out to the subscribed
 * webhook endpoints as it is written (see the `events_fan_out` trigger). Returns its id.
 */
export async function recordEvent(tx: Transaction, type: Change | typeof TEST_EVENT, data: object, orderId?: number) {
  const [event] = await tx
    .insert(events)
    .values({ type, payload: data, orderId, traceContext: currentTraceCarrier() })
    .returning({ id: events.id })
  return event!.id
}
