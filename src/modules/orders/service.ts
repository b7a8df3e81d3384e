import { and, count, desc, eq, type SQL } from 'drizzle-orm'
import { db, sql } from '../../db/client'
import { orderItems, orders } from '../../db/schema'
import { conflict, notFound } from '../../lib/errors'
import { logger } from '../../lib/logger'
import { paged } from '../../lib/model'
import { QUEUES } from '../../jobs/definitions'
import { outboxWritten } from '../../jobs/outbox'
import type { Principal } from '../auth/guard'
import type { CreateOrderBody, Order, OrderStatus } from './model'

type OrderRow = typeof orders.$inferSelect & { items: (typeof orderItems.$inferSelect)[] }

const toOrder = (row: OrderRow): Order => ({
  id: row.id,
  user_id: row.userId,
  status: row.status,
  total_cents: row.totalCents,
  items: row.items.map((item) => ({
    product_id: item.productId,
    name: item.name,
    unit_price_cents: item.unitPriceCents,
    quantity: item.quantity,
    line_total_cents: item.lineTotalCents,
  })),
  created_at: row.createdAt.toISOString(),
  updated_at: row.updatedAt.toISOString(),
})

/** Merges lines naming the same product and sorts them by product id (the lock order). */
export function mergeLines(items: CreateOrderBody['items']) {
  const quantities = new Map<number, number>()
  for (const { product_id, quantity } of items) quantities.set(product_id, (quantities.get(product_id) ?? 0) + quantity)
  const productIds = [...quantities.keys()].sort((a, b) => a - b)
  return { productIds, quantities: productIds.map((id) => quantities.get(id)!) }
}

/** Thrown inside the order transaction when a line could not be taken, so that it rolls back. */
class StockShortfall extends Error {}

const RETRYABLE = new Set(['40001', '40P01']) // serialization_failure, deadlock_detected
const MAX_ATTEMPTS = 5

// The same shape as Date#toISOString, which the rest of the API uses.
const ISO_8601 = 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'

type PlacedRow = {
  id: number
  user_id: number
  status: OrderStatus
  total_cents: string
  created_at: string
  updated_at: string
  items: Order['items']
}

/**
 * Places an order in one statement inside one transaction:
 * lock the products in id order, take each line's stock with a conditional update,
 * and only when every line was taken insert the order and its price-snapshot lines.
 */
async function takeStockAndInsertOrder(userId: number, productIds: number[], quantities: number[]) {
  return sql.begin(async (tx) => {
    const [placed] = await tx<PlacedRow[]>`
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
      taken AS (
        UPDATE products p
        SET inventory = p.inventory - r.quantity, updated_at = now()
        FROM requested r, locked l
        WHERE p.id = r.product_id AND p.id = l.id
          AND p.deleted_at IS NULL AND p.is_active AND p.inventory >= r.quantity
        RETURNING p.id AS product_id, p.name, p.price_cents, r.quantity
      ),
      -- All or nothing: no order row unless every requested line was taken.
      placed AS (
        INSERT INTO orders (user_id, total_cents)
        SELECT ${userId}, sum(t.price_cents::bigint * t.quantity) FROM taken t
        HAVING count(*) = ${productIds.length}
        RETURNING *
      ),
      lines AS (
        INSERT INTO order_items (order_id, product_id, name, unit_price_cents, quantity, line_total_cents)
        SELECT o.id, t.product_id, t.name, t.price_cents, t.quantity, t.price_cents::bigint * t.quantity
        FROM placed o CROSS JOIN taken t
        RETURNING *
      ),
      -- Post-order jobs go to the outbox in the same transaction: they exist if and only if the order does.
      jobs AS (
        INSERT INTO outbox (queue, name, payload)
        SELECT ${QUEUES.orderConfirmation}, 'order.confirmation', jsonb_build_object('orderId', o.id) FROM placed o
        UNION ALL
        SELECT ${QUEUES.audit}, 'audit', jsonb_build_object(
          'actorId', o.user_id, 'action', 'order.placed', 'entity', 'order', 'entityId', o.id,
          'details', jsonb_build_object('totalCents', o.total_cents,
            'items', (SELECT jsonb_agg(jsonb_build_object('productId', t.product_id, 'quantity', t.quantity)) FROM taken t)))
        FROM placed o
      )
      SELECT o.id, o.user_id, o.status, o.total_cents,
        to_char(o.created_at AT TIME ZONE 'UTC', ${ISO_8601}) AS created_at,
        to_char(o.updated_at AT TIME ZONE 'UTC', ${ISO_8601}) AS updated_at,
        (SELECT json_agg(json_build_object(
            'product_id', l.product_id, 'name', l.name, 'unit_price_cents', l.unit_price_cents,
            'quantity', l.quantity, 'line_total_cents', l.line_total_cents) ORDER BY l.product_id)
         FROM lines l) AS items
      FROM placed o`
    if (!placed) throw new StockShortfall()
    return placed
  })
}

/** After a rolled-back attempt: which line failed, and why (404 before 409, lowest product id first). */
async function explainShortfall(productIds: number[], quantities: number[]) {
  const rows = await sql<{ product_id: number; found: boolean; is_active: boolean | null; enough: boolean | null }[]>`
    SELECT r.product_id, p.id IS NOT NULL AS found, p.is_active, p.inventory >= r.quantity AS enough
    FROM unnest(${productIds}::int[], ${quantities}::int[]) AS r(product_id, quantity)
    LEFT JOIN products p ON p.id = r.product_id AND p.deleted_at IS NULL
    ORDER BY r.product_id`
  const missing = rows.find((row) => !row.found)
  if (missing) return notFound(`Product ${missing.product_id} not found`)
  const inactive = rows.find((row) => !row.is_active)
  if (inactive) return conflict(`Product ${inactive.product_id} is not active`)
  const short = rows.find((row) => !row.enough)
  if (short) return conflict(`Insufficient inventory for product ${short.product_id}`)
  return undefined // stock came back in the meantime (e.g. a cancellation): try again
}

export async function placeOrder(userId: number, body: CreateOrderBody): Promise<Order> {
  const { productIds, quantities } = mergeLines(body.items)
  for (let attempt = 1; ; attempt++) {
    try {
      const placed = await takeStockAndInsertOrder(userId, productIds, quantities)
      outboxWritten()
      return {
        id: placed.id,
        user_id: placed.user_id,
        status: placed.status,
        total_cents: Number(placed.total_cents),
        items: placed.items,
        created_at: placed.created_at,
        updated_at: placed.updated_at,
      }
    } catch (error) {
      const lastAttempt = attempt >= MAX_ATTEMPTS
      if (error instanceof StockShortfall) {
        const reason = await explainShortfall(productIds, quantities)
        if (reason) throw reason
        if (lastAttempt) throw conflict(`Insufficient inventory for product ${productIds[0]}`)
      } else if (RETRYABLE.has((error as { code?: string }).code ?? '') && !lastAttempt) {
        logger.warn({ attempt, code: (error as { code: string }).code }, 'order transaction retried')
      } else {
        throw error
      }
    }
  }
}

async function listOrders(where: SQL | undefined, page: number, limit: number, offset: number) {
  const [rows, [totals]] = await Promise.all([
    db.query.orders.findMany({
      where,
      orderBy: [desc(orders.id)],
      limit,
      offset,
      with: { items: { orderBy: [orderItems.productId] } },
    }),
    db.select({ total: count() }).from(orders).where(where),
  ])
  return paged(rows.map(toOrder), totals?.total ?? 0, page, limit)
}

type Page = { page: number; limit: number; offset: number }

export const listOrdersOfUser = (userId: number, { page, limit, offset }: Page) =>
  listOrders(eq(orders.userId, userId), page, limit, offset)

export const listAllOrders = (filters: { status?: OrderStatus; userId?: number }, { page, limit, offset }: Page) =>
  listOrders(
    and(
      filters.status ? eq(orders.status, filters.status) : undefined,
      filters.userId ? eq(orders.userId, filters.userId) : undefined,
    ),
    page,
    limit,
    offset,
  )

/** The owner and admins see an order; to anyone else it does not exist. */
export async function getOrder(id: number, viewer: Principal): Promise<Order> {
  const row = await db.query.orders.findFirst({
    where: eq(orders.id, id),
    with: { items: { orderBy: [orderItems.productId] } },
  })
  if (!row || (viewer.role !== 'admin' && row.userId !== viewer.id)) throw notFound(`Order ${id} not found`)
  return toOrder(row)
}
