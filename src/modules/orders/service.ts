import { and, asc, count, desc, eq, type SQL } from 'drizzle-orm'
import { db } from '../../db/client'
import { orderItems, orderStatusHistory, orders } from '../../db/schema'
import { notFound } from '../../lib/errors'
import { paged } from '../../lib/model'
import type { Principal } from '../auth/guard'
import type { Order, OrderStatus } from './model'

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
  shipment:
    row.carrier && row.trackingNumber && row.shippedAt
      ? { carrier: row.carrier, tracking_number: row.trackingNumber, shipped_at: row.shippedAt.toISOString() }
      : null,
  delivered_at: row.deliveredAt?.toISOString() ?? null,
  created_at: row.createdAt.toISOString(),
  updated_at: row.updatedAt.toISOString(),
})

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
  const row = await db.query.orders.findFirst({
    where: eq(orders.id, id),
    with: { items: { orderBy: [orderItems.productId] } },
  })
  if (!row || (viewer.role !== 'admin' && row.userId !== viewer.id)) throw notFound(`Order ${id} not found`)
  return toOrder(row)
}
