import { createHash } from 'node:crypto'
import type { Sql, TransactionSql } from 'postgres'
import { sql } from '../../db/client'
import { MAX_TRANSACTION_ATTEMPTS, retryOnConflict } from '../../db/retry'
import { JOB_NAMES, QUEUES } from '../../outbox/definitions'
import { outboxWritten } from '../../outbox/enqueue'
import { badRequest, conflict } from '../../lib/errors'
import { ordersPlaced, ordersRejected } from '../../lib/metrics'
import { currentTraceCarrier, type TraceCarrier } from '../../lib/tracing'
import { IDEMPOTENCY_WINDOW_HOURS, type OrderOutcome, type OrderRequest, placeOrderBatch, rejection } from './batch'
import { OrderCombiner } from './combine'
import { type CreateOrderBody, MAX_QUANTITY, type Order, type ShippingAddress } from './model'
import { lowStockAudits, lowStockCrossings, lowStockEvents, stockChanged } from '../products/service'

/**
 * Merges lines naming the same product and sorts them by product id (the lock order). With
 * `maxPerProduct` (orders), a product merged past it is a 400.
 */
export function mergeLines(
  items: readonly { product_id: number; quantity: number }[],
  maxPerProduct = Number.POSITIVE_INFINITY,
) {
  const quantities = new Map<number, number>()
  for (const { product_id, quantity } of items) {
    const merged = (quantities.get(product_id) ?? 0) + quantity
    if (merged > maxPerProduct)
      throw badRequest(
        `Invalid body: product ${product_id} is ordered ${merged} times; at most ${maxPerProduct} in all`,
      )
    quantities.set(product_id, merged)
  }
  const productIds = [...quantities.keys()].sort((a, b) => a - b)
  return { productIds, quantities: productIds.map((id) => quantities.get(id)!) }
}

/** Thrown when a line could not be taken (inside a transaction, it rolls the transaction back). */
class StockShortfall extends Error {}

/**
 * Takes the stock and writes the order in one statement (one round trip; row locks are held
 * only while it runs): lock the products in id order, take each line with a conditional
 * update, and only when every line was taken insert the order, its price-snapshot lines, its
 * outbox jobs and its order.placed event. Runs on its own (autocommit) or inside the caller's transaction.
 */
export async function takeStockAndInsertOrder(
  db: Sql | TransactionSql,
  userId: number,
  productIds: number[],
  quantities: number[],
  traceContext: TraceCarrier | null = null,
  shippingAddress: ShippingAddress | null = null,
) {
  // The request's trace context: the order.placed event's, and (as a list) the outbox rows'.
  const trace = traceContext && JSON.stringify(traceContext)
  const traced = traceContext && JSON.stringify([traceContext])
  const [placed] = await db<{ body: Order }[]>`
    WITH requested AS (
      SELECT * FROM unnest(${productIds}::int[], ${quantities}::int[]) AS r(product_id, quantity)
    ),
    -- Row locks in ascending id order: concurrent orders over the same products queue, never deadlock.
    locked AS (
      SELECT p.id FROM products p JOIN requested r ON r.product_id = p.id
      WHERE p.deleted_at IS NULL AND p.is_active AND p.inventory >= r.quantity
      ORDER BY p.id
      FOR UPDATE OF p
    ),
    -- The stock check and the decrement are one conditional UPDATE: no read-then-write.
    -- All or nothing: lines are taken only when every one of them could be locked, so a
    -- failed order changes nothing even as a single autocommit statement.
    taken AS (
      UPDATE products p
      SET inventory = p.inventory - r.quantity, updated_at = now()
      FROM requested r, locked l
      WHERE p.id = r.product_id AND p.id = l.id
        AND p.deleted_at IS NULL AND p.is_active AND p.inventory >= r.quantity
        AND (SELECT count(*) FROM locked) = ${productIds.length}
      RETURNING p.id AS product_id, p.name, p.price_cents, r.quantity, p AS product
    ),
    ${lowStockCrossings()}
    placed AS (
      INSERT INTO orders (user_id, total_cents, shipping_address)
      SELECT ${userId}, sum(t.price_cents::bigint * t.quantity), ${shippingAddress && JSON.stringify(shippingAddress)}::jsonb
      FROM taken t
      HAVING count(*) = ${productIds.length}
      RETURNING *
    ),
    history AS (
      INSERT INTO order_status_history (order_id, from_status, to_status, actor_id, actor_role)
      SELECT o.id, NULL, 'pending', o.user_id, 'customer' FROM placed o
    ),
    lines AS (
      INSERT INTO order_items (order_id, product_id, name, unit_price_cents, quantity, line_total_cents)
      SELECT o.id, t.product_id, t.name, t.price_cents, t.quantity, t.price_cents::bigint * t.quantity
      FROM placed o CROSS JOIN taken t
      RETURNING *
    ),
    -- Post-order jobs go to the outbox in the same transaction: they exist if and only if the order does.
    jobs AS (
      INSERT INTO outbox (queue, name, payload, trace_context)
      SELECT ${QUEUES.orderConfirmation}, ${JOB_NAMES.orderConfirmation}, jsonb_build_object('orderId', o.id), ${traced}::jsonb
      FROM placed o
      UNION ALL
      SELECT ${QUEUES.audit}, ${JOB_NAMES.audit}, jsonb_build_object(
        'actorId', o.user_id, 'action', 'order.placed', 'entity', 'order', 'entityId', o.id,
        'details', jsonb_build_object('totalCents', o.total_cents,
          'items', (SELECT jsonb_agg(jsonb_build_object('productId', t.product_id, 'quantity', t.quantity)) FROM taken t))),
        ${traced}::jsonb
      FROM placed o
      UNION ALL
      ${lowStockAudits(traced)}
    ),
    -- The order as the API shows it: the response, and the data of its order.placed event.
    document AS (
      SELECT o.id, order_document(o::orders, (
        SELECT jsonb_agg(order_item_document(l::order_items) ORDER BY l.product_id) FROM lines l)) AS body
      FROM placed o
    ),
    events_written AS (
      INSERT INTO events (type, order_id, payload, trace_context)
      SELECT 'order.placed', id, body, ${trace}::jsonb FROM document
      UNION ALL
      ${lowStockEvents(trace)}
    )
    SELECT body FROM document`
  if (!placed) throw new StockShortfall()
  return placed.body
}

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

/** A lone order without an Idempotency-Key: one autocommit statement, one round trip. */
export async function placeSingleOrder(request: OrderRequest): Promise<OrderOutcome> {
  for (let attempt = 1; ; attempt++) {
    try {
      const order = await retryOnConflict(() =>
        takeStockAndInsertOrder(
          sql,
          request.userId,
          request.productIds,
          request.quantities,
          request.traceContext,
          request.shippingAddress,
        ),
      )
      return { kind: 'placed', order }
    } catch (error) {
      if (!(error instanceof StockShortfall)) throw error
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
