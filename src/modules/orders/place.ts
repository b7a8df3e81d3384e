import { createHash } from 'node:crypto'
import { sql } from '../../db/client'
import { MAX_TRANSACTION_ATTEMPTS, retryOnConflict } from '../../db/retry'
import { outboxWritten } from '../../outbox/enqueue'
import { conflict } from '../../lib/errors'
import { currentTraceCarrier } from '../../lib/tracing'
import { stockChanged } from '../products/service'
import {
  IDEMPOTENCY_WINDOW_HOURS,
  type OrderOutcome,
  type OrderRequest,
  placeOrderBatch,
  rejection,
  toWrite,
} from './batch'
import { OrderCombiner } from './combine'
import { ordersPlaced, ordersRejected } from './metrics'
import { type CreateOrderBody, MAX_QUANTITY, type Order, type ShippingAddress } from './model'
import { writeOrders } from './placement'
import { mergeLines } from './service'

/** After a failed attempt: why the order cannot be served now, or nothing (try again). */
async function explainShortfall(productIds: number[], quantities: number[]) {
  const rows = await sql<{ product_id: number; found: boolean; is_active: boolean | null; enough: boolean | null }[]>`
    SELECT r.product_id, p.id IS NOT NULL AS found, p.is_active, p.inventory >= r.quantity AS enough
    FROM unnest(${productIds}::int[], ${quantities}::int[]) AS r(product_id, quantity)
    LEFT JOIN products p ON p.id = r.product_id AND p.deleted_at IS NULL
    ORDER BY r.product_id`
  // Stock that came back in the meantime (e.g. a cancellation) leaves no reason: try again.
  return rejection(
    rows.map((row) => ({
      productId: row.product_id,
      found: row.found,
      active: row.is_active ?? false,
      enough: row.enough ?? false,
    })),
  )
}

/** A lone order without an Idempotency-Key: the writer's statement on its own (autocommit), one round trip. */
export async function placeSingleOrder(request: OrderRequest): Promise<OrderOutcome> {
  for (let attempt = 1; ; attempt++) {
    const [order] = (await retryOnConflict(() => writeOrders(sql, [toWrite(request)]))) ?? []
    if (order) return { kind: 'placed', order }
    const shortfall = await explainShortfall(request.productIds, request.quantities)
    if (shortfall) return shortfall
    if (attempt >= MAX_TRANSACTION_ATTEMPTS)
      return {
        kind: 'rejected',
        reason: 'insufficient_inventory',
        error: conflict(`Insufficient inventory for product ${request.productIds[0]}`),
      }
  }
}

/** The body as sent (line order and address included): a different body under the same key is a 422. */
const hashRequest = (items: CreateOrderBody['items'], address: ShippingAddress | null) =>
  createHash('sha256')
    .update(JSON.stringify([items.map((item) => [item.product_id, item.quantity]), address]))
    .digest('hex')

/** The address as stored: its fields in one order, optional ones only when sent. */
function addressSnapshot(address: ShippingAddress | undefined): ShippingAddress | null {
  if (!address) return null
  const { name, line1, line2, city, region, postal_code, country, phone } = address
  return Object.fromEntries(
    Object.entries({ name, line1, line2, city, region, postal_code, country, phone }).filter(
      ([, value]) => value !== undefined,
    ),
  ) as ShippingAddress
}

export type PlacedOrder = { status: number; order: Order; replayed: boolean }

const orderCombiner = new OrderCombiner({ single: placeSingleOrder, batch: placeOrderBatch })

/**
 * Places one order. Orders that arrive while others are being placed are combined with them
 * (see combine.ts); the outcome is the same as if each had been placed on its own, in order.
 */
export async function placeOrder(userId: number, body: CreateOrderBody, idempotencyKey?: string): Promise<PlacedOrder> {
  const { productIds, quantities } = mergeLines(body.items, MAX_QUANTITY)
  const shippingAddress = addressSnapshot(body.shipping_address)
  const outcome = await orderCombiner.submit({
    userId,
    productIds,
    quantities,
    ...(idempotencyKey ? { idempotencyKey, requestHash: hashRequest(body.items, shippingAddress) } : {}),
    shippingAddress,
    traceContext: currentTraceCarrier(),
  })
  switch (outcome.kind) {
    case 'placed':
      outboxWritten()
      // This process shows the new stock at once; the others within a second.
      stockChanged(productIds)
      ordersPlaced.inc()
      return { status: 201, order: outcome.order, replayed: false }
    case 'replayed':
      return { status: outcome.status, order: outcome.order, replayed: true }
    case 'rejected':
      ordersRejected.inc({ reason: outcome.reason })
      throw outcome.error
    case 'key-reused':
      throw outcome.error
  }
}

/** Forgets keys past the window (they would be treated as new anyway); returns how many. */
export async function deleteExpiredIdempotencyKeys(): Promise<number> {
  const deleted = await sql`
    DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => ${IDEMPOTENCY_WINDOW_HOURS})`
  return deleted.count
}
