import { getTableName } from 'drizzle-orm'
import type { Fragment, Sql, TransactionSql } from 'postgres'
import { sql } from '../../db/client'
import { type Cte, cte, frozen, frozenSteps, literal } from '../../db/cte'
import { into } from '../../db/names'
import { orderItems, orders, orderStatusHistory } from '../../db/schema'
import type { TraceCarrier } from '../../lib/tracing'
import { eventRows, insertEvents, insertOutbox, outboxRows } from '../../outbox/rows'
import { auditJobRows } from '../audit/service'
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

// The statement's steps. Only three carry the request's values (`requested`: n, product_id,
// quantity per line; `wanted`: the units of each product over all the orders; `numbered`: each
// order's user, address and trace context), besides the keys' steps; the others are constants, frozen once into text (a lone order pays for a handful
// of fragments, not for every step at every execution).

/** The first steps, after `requested` and `wanted`: take the stock, all or nothing. */
const takeStock = (locksHeld: boolean): Cte[] => [
  ...(locksHeld
    ? []
    : [
        cte(
          'locked',
          sql`SELECT p.id FROM products p JOIN wanted w ON w.product_id = p.id
            WHERE p.deleted_at IS NULL AND p.is_active AND p.inventory >= w.quantity
            ORDER BY p.id
            FOR UPDATE OF p`,
        ),
      ]),
  // All or nothing: units are taken only when every product could be locked, so a refused
  // statement changes nothing even on its own (autocommit). (Under the caller's locks, a
  // refusal rolls the caller's transaction back.)
  cte(
    'taken',
    sql`UPDATE products p SET inventory = p.inventory - w.quantity, updated_at = now()
      FROM wanted w ${locksHeld ? sql`` : sql`, locked l`}
      WHERE p.id = w.product_id ${locksHeld ? sql`` : sql`AND p.id = l.id AND (SELECT count(*) FROM locked) = (SELECT count(*) FROM wanted)`}
        AND p.deleted_at IS NULL AND p.is_active AND p.inventory >= w.quantity
      RETURNING p.id AS product_id, p.name, p.price_cents, w.quantity, p AS product`,
  ),
  lowStockCrossings(),
]
const TAKE_STOCK = { held: frozenSteps(takeStock(true)), locking: frozenSteps(takeStock(false)) }

// The statement's jobs continue every order's trace; a crossing's event, the first one's.
const TRACES = sql`(SELECT jsonb_agg(trace_context ORDER BY n) FROM numbered WHERE trace_context IS NOT NULL)`
const FIRST_TRACE = sql`(SELECT trace_context FROM numbered WHERE trace_context IS NOT NULL ORDER BY n LIMIT 1)`

/** The steps after `numbered`: write the orders and everything that goes with them. */
const WRITE_ORDERS = frozenSteps([
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
    // (One sort for both lists: the aggregates take the lines in the order the subquery gives.)
    sql`SELECT order_id, jsonb_agg(order_item_document(l::order_items)) AS items,
        jsonb_agg(jsonb_build_object('productId', l.product_id, 'quantity', l.quantity)) AS audited
      FROM (SELECT * FROM lines ORDER BY order_id, product_id) l GROUP BY order_id`,
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
    lowStockEvents(FIRST_TRACE),
  ),
  // The orders' jobs, in the same transaction: they exist if and only if the orders do.
  insertOutbox(
    'jobs',
    outboxRows('orderConfirmation', {
      payload: sql`jsonb_build_object('orderIds', jsonb_agg(id ORDER BY id))`,
      traces: TRACES,
      from: sql`documents`,
      filter: sql`HAVING count(*) > 0`,
    }),
    auditJobRows(
      {
        fact: 'order-placed',
        actorId: sql`d.user_id`,
        action: 'order.placed',
        entity: 'order',
        entityId: sql`d.id`,
        details: sql`jsonb_build_object('totalCents', d.total_cents, 'items', d.audited)`,
      },
      { from: sql`documents d`, traces: TRACES, orderBy: sql`d.id` },
    ),
    lowStockAudits(TRACES),
  ),
])

const RESULT = frozen(sql`SELECT body FROM documents ORDER BY id`)

/** The orders' id sequence, looked up once per process (not once per order, as pg_get_serial_sequence would be). */
// (Held in an object: a fragment is a thenable, which a promise would run instead of holding.)
let orderIds: Promise<{ sequence: Fragment }> | undefined
const orderIdSequence = async () => {
  const [row] = await sql<{ name: string }[]>`SELECT pg_get_serial_sequence(${getTableName(orders)}, ${orders.id.name}) AS name`
  return { sequence: sql`${literal(row!.name)}::regclass` }
}

/**
 * Takes the stock of every order and writes them, all or nothing, in one statement (one round
 * trip; row locks are held only while it runs): the products are locked in id order (concurrent
 * writers queue, never deadlock), each product's units are taken by one conditional UPDATE (no
 * read-then-write), and only when every product could be taken are the orders written. Runs on
 * its own (autocommit) or inside the caller's transaction. With `locksHeld`, the caller's
 * transaction has locked the products already (a batch, which allocated against them): the
 * statement skips locking them again, and a refusal (`null`) must roll that transaction back,
 * since units of the products that could be taken were taken. `ids`: the orders' ids, drawn
 * by the caller beforehand (else the statement draws them).
 *
 * Returns the orders as the API shows them, in the order given, or `null` when some product
 * could not be taken (unknown, inactive or short): then nothing was written but the releases.
 */
export async function writeOrders(
  db: Sql | TransactionSql,
  orders: readonly OrderToWrite[],
  {
    released = [],
    locksHeld = false,
    ids,
  }: { released?: readonly ReleasedKey[]; locksHeld?: boolean; ids?: readonly number[] } = {},
): Promise<Order[] | null> {
  const lineOrder: number[] = []
  const lineProduct: number[] = []
  const lineQuantity: number[] = []
  for (const [n, order] of orders.entries())
    for (const [line, productId] of order.productIds.entries()) {
      lineOrder.push(n)
      lineProduct.push(productId)
      lineQuantity.push(order.quantities[line]!)
    }
  // Every order's units of a product, taken together: the orders were allocated in arrival
  // order by whoever built them (a lone order, or a batch against its locked rows).
  const wanted = new Map<number, number>()
  for (const [i, productId] of lineProduct.entries())
    wanted.set(productId, (wanted.get(productId) ?? 0) + lineQuantity[i]!)
  const keyed = orders.flatMap((order, n) => (order.idempotencyKey ? [{ n, ...order }] : []))
  orderIds ??= orderIdSequence()
  const { sequence } = await orderIds

  const rows = await db<{ body: Order }[]>`WITH requested AS (
      SELECT * FROM unnest(${lineOrder}::int[], ${lineProduct}::int[], ${lineQuantity}::int[]) AS r(n, product_id, quantity)
    ),
    wanted AS (SELECT * FROM unnest(${[...wanted.keys()]}::int[], ${[...wanted.values()]}::int[]) AS w(product_id, quantity)),
    ${locksHeld ? TAKE_STOCK.held : TAKE_STOCK.locking},
    -- Order ids in arrival order, drawn only when every product was taken.
    numbered AS (
      SELECT o.n, ${ids ? sql`o.id` : sql`nextval(${sequence})::int`} AS id, o.user_id,
        NULLIF(o.shipping_address, 'null'::jsonb) AS shipping_address, NULLIF(o.trace_context, 'null'::jsonb) AS trace_context
      FROM unnest(${orders.map((_, n) => n)}::int[], ${orders.map((o) => o.userId)}::int[],
        ${orders.map((o) => JSON.stringify(o.shippingAddress))}::jsonb[],
        ${orders.map((o) => JSON.stringify(o.traceContext))}::jsonb[],
        ${ids ?? orders.map(() => 0)}::int[]) AS o(n, user_id, shipping_address, trace_context, id)
      WHERE (SELECT count(*) FROM taken) = (SELECT count(*) FROM wanted)
      ORDER BY o.n
    ),
    ${WRITE_ORDERS}
    ${
      keyed.length
        ? sql`, responses AS (
      UPDATE idempotency_keys k SET response_status = 201, response_body = d.body, order_id = d.id
      FROM unnest(${keyed.map((o) => o.userId)}::int[], ${keyed.map((o) => o.idempotencyKey!)}::text[],
        ${keyed.map((o) => o.n)}::int[]) AS r(user_id, key, n)
        JOIN numbered n ON n.n = r.n JOIN documents d ON d.id = n.id
      WHERE k.user_id = r.user_id AND k.key = r.key
    )`
        : sql``
    }
    ${
      released.length
        ? sql`, released AS (
      DELETE FROM idempotency_keys k
      USING unnest(${released.map((k) => k.userId)}::int[], ${released.map((k) => k.key)}::text[]) AS r(user_id, key)
      WHERE k.user_id = r.user_id AND k.key = r.key
    )`
        : sql``
    }
    ${RESULT}`
  if (orders.length && rows.length !== orders.length) return null
  return rows.map((row) => row.body)
}
