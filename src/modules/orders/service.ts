import { asc, eq } from 'drizzle-orm'
import type { Fragment } from 'postgres'
import { db, sql } from '../../db/client'
import { orderStatusHistory } from '../../db/schema'
import { badRequest, notFound } from '../../lib/errors'
import { readPage } from '../../lib/model'
import type { Principal } from '../auth/guard'
import type { Order, OrderStatus } from './model'

// An order is read as the order_document SQL function (migration 0007) writes it: the one
// definition of the document, shared with the responses of placing and moving orders and with
// the data of their webhook events.
const document = sql`order_document(o, order_items_document(o.id))`

async function listOrders(conditions: (Fragment | undefined)[], page: number, limit: number, offset: number) {
  const present = conditions.filter((condition) => condition !== undefined)
  const where = present.length ? sql`WHERE ${present.reduce((all, condition) => sql`${all} AND ${condition}`)}` : sql``
  return readPage(
    sql<{ order: Order }[]>`
      SELECT ${document} AS order FROM orders o ${where} ORDER BY o.id DESC LIMIT ${limit} OFFSET ${offset}`.then(
      (rows) => rows.map((row) => row.order),
    ),
    sql<{ total: number }[]>`SELECT count(*)::int AS total FROM orders o ${where}`,
    { page, limit },
  )
}

type Page = { page: number; limit: number; offset: number }

export const listOrdersOfUser = (userId: number, { page, limit, offset }: Page) =>
  listOrders([sql`o.user_id = ${userId}`], page, limit, offset)

export const listAllOrders = (filters: { status?: OrderStatus; userId?: number }, { page, limit, offset }: Page) =>
  listOrders(
    [
      filters.status ? sql`o.status = ${filters.status}` : undefined,
      filters.userId ? sql`o.user_id = ${filters.userId}` : undefined,
    ],
    page,
    limit,
    offset,
  )

/** Every status the order has been in, oldest first; only for whoever may see the order. */
export async function getOrderHistory(id: number, viewer: Principal) {
  await getOrder(id, viewer)
  const rows = await db
    .select()
    .from(orderStatusHistory)
    .where(eq(orderStatusHistory.orderId, id))
    .orderBy(asc(orderStatusHistory.id))
  return {
    data: rows.map((row) => ({
      from_status: row.fromStatus,
      to_status: row.toStatus,
      actor: row.actorId !== null && row.actorRole !== null ? { id: row.actorId, role: row.actorRole } : null,
      note: row.note,
      created_at: row.createdAt.toISOString(),
    })),
  }
}

/** The owner and admins see an order; to anyone else it does not exist. */
export async function getOrder(id: number, viewer: Principal): Promise<Order> {
  const [row] = await sql<{ order: Order }[]>`SELECT ${document} AS order FROM orders o WHERE o.id = ${id}`
  if (!row || (viewer.role !== 'admin' && row.order.user_id !== viewer.id)) throw notFound(`Order ${id} not found`)
  return row.order
}

/**
 * Merges lines naming the same product and sorts them by product id (the lock order). With
 * `maxPerProduct` (orders), a product merged past it is a 400. Orders and returns merge alike.
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
