import { sql } from '../../db/client'
import { badRequest, HttpError, notFound } from '../../lib/errors'
import type { Principal } from '../auth/guard'
import { type Move, moveStatus, type Subject } from '../lifecycle/service'
import { restockSteps, stockChanged } from '../products/service'
import { allowedMoves, TRANSITIONS } from './lifecycle'
import type { OrderStatus, StatusChangeBody } from './model'
import { getOrder } from './service'

/** The statuses an order can be moved to (it starts pending). */
type OrderTarget = Exclude<OrderStatus, 'pending'>

/** Orders, through the order lifecycle (lifecycle.ts); shipped and delivered are notified. */
const ORDERS: Subject<OrderStatus, OrderTarget> = {
  entity: 'order',
  table: 'orders',
  statusType: 'order_status',
  transitions: TRANSITIONS,
  events: {
    confirmed: 'order.confirmed',
    processing: 'order.processing',
    shipped: 'order.shipped',
    delivered: 'order.delivered',
    cancelled: 'order.cancelled',
  },
  document: sql`order_document(row, order_items_document(id))`,
  orderId: sql`id`,
  history: true,
  notify: {
    statuses: ['shipped', 'delivered'],
    job: 'orderNotification',
    payload: (to) => sql`jsonb_build_object('orderId', c.id, 'kind', ${to}::text)`,
  },
}

/** Moves orders (moveStatus): the customer's, an admin's and the worker's moves alike. */
export const moveOrders = ({ orderIds, ...move }: Omit<Move<OrderTarget>, 'ids'> & { orderIds: readonly number[] }) =>
  moveStatus(ORDERS, { ids: orderIds, ...move })

/**
 * Moves one order for a customer or an admin (moveOrders). Refused → 404 (unknown, or not the
 * caller's) or 409 with the current status and the moves an admin could make now.
 */
export async function transition({
  orderId,
  ...move
}: Omit<Move<OrderTarget>, 'ids' | 'by'> & { orderId: number; by: Principal }) {
  const [row] = await moveOrders({ orderIds: [orderId], ...move })
  if (!row) throw notFound(`Order ${orderId} not found`)
  if (!row.moved)
    throw new HttpError(
      409,
      row.status === move.to
        ? `Order ${orderId} is already ${move.to}`
        : `Order ${orderId} cannot move from ${row.status} to ${move.to}`,
      { status: row.status, allowed: allowedMoves(row.status, 'admin') },
    )
  return getOrder(orderId, move.by)
}

/** The admin's moves: processing, shipped (with its shipment), delivered. */
export function changeStatus(orderId: number, body: StatusChangeBody, by: Principal) {
  return transition({ orderId, to: body.status, by, note: body.note, set: columnsFor(body) })
}

/** What a move sets besides the status: the shipment (required when shipping), the delivery time. */
function columnsFor({ status, carrier, tracking_number }: StatusChangeBody) {
  if (status === 'delivered') return [sql`delivered_at = now()`]
  if (status !== 'shipped') return []
  if (!carrier || !tracking_number) throw badRequest('A shipped order needs a carrier and a tracking_number')
  return [sql`carrier = ${carrier.trim()}`, sql`tracking_number = ${tracking_number.trim()}`, sql`shipped_at = now()`]
}

/**
 * Cancels an order and puts its units back, exactly once: the restock is part of the status
 * change's statement, so a second cancel finds nothing to change. Products are locked in id
 * order, as orders lock them.
 */
export async function cancelOrder(orderId: number, by: Principal) {
  const order = await transition({
    orderId,
    to: 'cancelled',
    by,
    also: restockSteps(sql`SELECT i.product_id, i.quantity FROM order_items i JOIN changed c ON c.id = i.order_id`, {
      skipDeleted: false,
    }),
    details: sql`jsonb_build_object('restocked',
      (SELECT jsonb_agg(jsonb_build_object('productId', r.product_id, 'quantity', r.quantity)) FROM restocked r))`,
  })
  stockChanged(order.items.map((item) => item.product_id))
  return order
}
