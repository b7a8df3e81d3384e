import type { Sql, TransactionSql } from 'postgres'
import { sql } from '../../db/client'
import { cte, withSteps } from '../../db/cte'
import { into } from '../../db/names'
import { orderItems, orders, orderStatusHistory } from '../../db/schema'
import type { TraceCarrier } from '../../lib/tracing'
import { eventRows, insertEvents, insertOutbox, outboxRows } from '../../outbox/rows'
import { lowStockAudits, lowStockCrossings, lowStockEvents } from '../products/service'
import type { Order, ShippingAddress } from './model'

// The one writer of orders: every order, alone or in a batch, keyed or not, is written here, by
// one statement built from the steps below. What an order records is therefore the same
// whichever path it took:
// - its stock taken, its row, its lines (price snapshots), its first history entry;
// - its order.placed event, whose data is the order as the API shows it (order_document);
// - one confirmation job `{orderIds}` and one audit job `{entries}` for all the statement's
//   orders, each entry keyed `order-placed:<id>` (the fact, not the row that carries it);
// - the product.low_stock event and audit job of every product it took across its threshold.

// What the statement writes, named from the schema.
const ORDER_COLUMNS = into(orders, ['id', 'userId', 'totalCents', 'shippingAddress'])
const HISTORY_COLUMNS = into(orderStatusHistory, ['orderId', 'fromStatus', 'toStatus', 'actorId', 'actorRole'])
const LINE_COLUMNS = into(orderItems, ['orderId', 'productId', 'name', 'unitPriceCents', 'quantity', 'lineTotalCents'])

/** One order to write: its lines merged and sorted by product id (the lock order). */
export type OrderToWrite = {
  userId: number
  productIds: readonly number[]
  quantities: readonly number[]
  shippingAddress: ShippingAddress | null
  traceContext: TraceCarrier | null
  /** A claimed Idempotency-Key: the order's response is stored under it. */
  idempotencyKey?: string
}

/** A claimed key whose order was refused: released, so a retry with it is a new attempt. */
export type ReleasedKey = { userId: number; key: string }

/**
 * Takes the stock of every order and writes them, all or nothing, in one statement (one round
 * trip; row locks are held only while it runs): the products are locked in id order (concurrent
 * writers queue, never deadlock), each product's units are taken by one conditional UPDATE (no
 * read-then-write), and only when every product could be taken are the orders written. Runs on
 * its own (autocommit) or inside the caller's transaction. With `locksHeld`, the caller's
 * transaction has locked the products already (a batch, which allocated against them): the
 * statement skips locking them again, and a refusal (`null`) must roll that transaction back,
 * since units of the products that could be taken were taken.
 *
 * Returns the orders as the API shows them, in the order given, or `null` when some product
 * could not be taken (unknown, inactive or short): then nothing was written but the releases.
 */
export async function writeOrders(
  db: Sql | TransactionSql,
  orders: readonly OrderToWrite[],
  { released = [], locksHeld = false }: { released?: readonly ReleasedKey[]; locksHeld?: boolean } = {},
): Promise<Order[] | null> {
  const lines = orders.flatMap((order, n) => order.productIds.map((productId, line) => ({ n, productId, line })))
  const productCount = new Set(lines.map((line) => line.productId)).size
  const contexts = orders.flatMap((order) => (order.traceContext ? [order.traceContext] : []))
  // The statement's jobs continue every order's trace; a crossing's event, the first one's.
  const traces = contexts.length ? JSON.stringify(contexts) : null
  const firstTrace = contexts.length ? JSON.stringify(contexts[0]) : null
  const keyed = orders.flatMap((order, n) => (order.idempotencyKey ? [{ n, ...order }] : []))

  const rows = await db<{ body: Order }[]>`${withSteps(
    [
      cte(
        'requested',
        sql`SELECT * FROM unnest(${lines.map((l) => l.n)}::int[], ${lines.map((l) => l.productId)}::int[],
          ${lines.map((l) => orders[l.n]!.quantities[l.line]!)}::int[]) AS r(n, product_id, quantity)`,
      ),
      // Every order's units of a product, taken together: the orders were allocated in arrival
      // order by whoever built them (a lone order, or a batch against its locked rows).
      cte('wanted', sql`SELECT product_id, sum(quantity) AS quantity FROM requested GROUP BY product_id`),
      !locksHeld &&
        cte(
          'locked',
          sql`SELECT p.id FROM products p JOIN wanted w ON w.product_id = p.id
            WHERE p.deleted_at IS NULL AND p.is_active AND p.inventory >= w.quantity
            ORDER BY p.id
            FOR UPDATE OF p`,
        ),
      // All or nothing: units are taken only when every product could be locked, so a refused
      // statement changes nothing even on its own (autocommit).
      cte(
        'taken',
        sql`UPDATE products p SET inventory = p.inventory - w.quantity, updated_at = now()
          FROM wanted w ${locksHeld ? sql`` : sql`, locked l`}
          WHERE p.id = w.product_id ${locksHeld ? sql`` : sql`AND p.id = l.id AND (SELECT count(*) FROM locked) = ${productCount}`}
            AND p.deleted_at IS NULL AND p.is_active AND p.inventory >= w.quantity
          RETURNING p.id AS product_id, p.name, p.price_cents, w.quantity, p AS product`,
      ),
      lowStockCrossings(),
      // Order ids in arrival order, drawn only when every product was taken.
      cte(
        'numbered',
        sql`SELECT o.n, nextval(pg_get_serial_sequence('orders', 'id'))::int AS id, o.user_id,
            NULLIF(o.shipping_address, 'null'::jsonb) AS shipping_address, NULLIF(o.trace_context, 'null'::jsonb) AS trace_context
          FROM unnest(${orders.map((_, n) => n)}::int[], ${orders.map((o) => o.userId)}::int[],
            ${orders.map((o) => JSON.stringify(o.shippingAddress))}::jsonb[],
            ${orders.map((o) => JSON.stringify(o.traceContext))}::jsonb[]) AS o(n, user_id, shipping_address, trace_context)
          WHERE (SELECT count(*) FROM taken) = ${productCount}
          ORDER BY o.n`,
      ),
      cte(
        'placed',
        sql`INSERT INTO ${ORDER_COLUMNS} OVERRIDING SYSTEM VALUE
          SELECT o.id, o.user_id, (
              SELECT sum(t.price_cents::bigint * r.quantity)
              FROM requested r JOIN taken t ON t.product_id = r.product_id WHERE r.n = o.n),
            o.shipping_address
          FROM numbered o
          RETURNING *`,
      ),
      cte(
        'history',
        sql`INSERT INTO ${HISTORY_COLUMNS}
          SELECT id, NULL, 'pending', user_id, 'customer' FROM placed`,
      ),
      cte(
        'lines',
        sql`INSERT INTO ${LINE_COLUMNS}
          SELECT o.id, r.product_id, t.name, t.price_cents, r.quantity, t.price_cents::bigint * r.quantity
          FROM numbered o JOIN requested r ON r.n = o.n JOIN taken t ON t.product_id = r.product_id
          RETURNING *`,
      ),
      // Each order's lines as the API shows them, and as its audit entry lists them.
      cte(
        'order_lines',
        sql`SELECT order_id, jsonb_agg(order_item_document(l::order_items) ORDER BY l.product_id) AS items,
            jsonb_agg(jsonb_build_object('productId', l.product_id, 'quantity', l.quantity) ORDER BY l.product_id) AS audited
          FROM lines l GROUP BY order_id`,
      ),
      // Each order as the API shows it: the response, and the data of its order.placed event.
      // (Ids were drawn in arrival order, so ordering by id is ordering by arrival.)
      cte(
        'documents',
        sql`SELECT o.id, o.user_id, o.total_cents, l.audited, order_document(o::orders, l.items) AS body
          FROM placed o JOIN order_lines l ON l.order_id = o.id`,
      ),
      insertEvents(
        'events_written',
        eventRows('order.placed', {
          orderId: sql`d.id`,
          data: sql`d.body`,
          trace: sql`n.trace_context`,
          from: sql`documents d JOIN numbered n ON n.id = d.id`,
        }),
        lowStockEvents(firstTrace),
      ),
      // The orders' jobs, in the same transaction: they exist if and only if the orders do.
      insertOutbox(
        'jobs',
        outboxRows('orderConfirmation', {
          payload: sql`jsonb_build_object('orderIds', jsonb_agg(id ORDER BY id))`,
          traces,
          from: sql`documents`,
          filter: sql`HAVING count(*) > 0`,
        }),
        outboxRows('audit', {
          payload: sql`jsonb_build_object('entries', jsonb_agg(jsonb_build_object(
            'key', 'order-placed:' || d.id, 'actorId', d.user_id, 'action', 'order.placed', 'entity', 'order', 'entityId', d.id,
            'details', jsonb_build_object('totalCents', d.total_cents, 'items', d.audited)) ORDER BY d.id))`,
          traces,
          from: sql`documents d`,
          filter: sql`HAVING count(*) > 0`,
        }),
        lowStockAudits(traces),
      ),
      keyed.length > 0 &&
        cte(
          'responses',
          sql`UPDATE idempotency_keys k SET response_status = 201, response_body = d.body, order_id = d.id
            FROM unnest(${keyed.map((o) => o.userId)}::int[], ${keyed.map((o) => o.idempotencyKey!)}::text[],
              ${keyed.map((o) => o.n)}::int[]) AS r(user_id, key, n)
              JOIN numbered n ON n.n = r.n JOIN documents d ON d.id = n.id
            WHERE k.user_id = r.user_id AND k.key = r.key`,
        ),
      released.length > 0 &&
        cte(
          'released',
          sql`DELETE FROM idempotency_keys k
            USING unnest(${released.map((k) => k.userId)}::int[], ${released.map((k) => k.key)}::text[]) AS r(user_id, key)
            WHERE k.user_id = r.user_id AND k.key = r.key`,
        ),
    ],
    sql`SELECT body FROM documents ORDER BY id`,
  )}`
  if (orders.length && rows.length !== orders.length) return null
  return rows.map((row) => row.body)
}
