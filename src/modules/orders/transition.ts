import type { Fragment } from 'postgres'
import { sql } from '../../db/client'
import { retryOnConflict } from '../../db/retry'
import { JOB_NAMES, QUEUES } from '../../outbox/definitions'
import { outboxWritten } from '../../outbox/enqueue'
import { badRequest, HttpError, notFound } from '../../lib/errors'
import type { Principal } from '../auth/guard'
import { allowedMoves, fromStatuses, type Mover } from './lifecycle'
import type { OrderStatus, StatusChangeBody } from './model'
import { getOrder } from './service'

type Transition = {
  orderId: number
  to: OrderStatus
  by: Principal
  note?: string
  /** More columns to set with the status (the shipment, the delivery time). */
  set?: Fragment
  /** More statements over `changed` (id, user_id, from_status), as CTEs each ending in a comma. */
  also?: Fragment
  /** Audit details beyond the previous status, the mover's role and the note. */
  details?: Fragment
}

const moverOf = (by: Principal): Mover => (by.role === 'admin' ? 'admin' : 'owner')

/**
 * Moves one order to `to` if the lifecycle allows it from its current status for this mover,
 * in one statement: the order row is locked, the status changes only from an allowed status
 * (so of concurrent identical changes exactly one succeeds), and with the change, in the same
 * transaction, its history entry, its event (the order as it now is), its audit job and, for shipped and delivered, the
 * customer's notification job. Refused → 404 (unknown, or not the caller's) or 409 with the
 * current status and the moves an admin could make now.
 */
export async function transition({ orderId, to, by, note, set, also, details }: Transition) {
  const mover = moverOf(by)
  const [row] = await retryOnConflict(
    () => sql<{ changed: number | null; current: OrderStatus | null }[]>`
      WITH current AS (
        SELECT id, status FROM orders
        WHERE id = ${orderId} ${mover === 'owner' ? sql`AND user_id = ${by.id}` : sql``}
        FOR UPDATE
      ),
      changed AS (
        UPDATE orders o SET status = ${to}, updated_at = now() ${set ?? sql``}
        FROM current c
        WHERE o.id = c.id AND c.status = ANY(${fromStatuses(to, mover)}::order_status[])
        RETURNING o.id, o.user_id, c.status AS from_status, o AS row
      ),
      ${also ?? sql``}
      history AS (
        INSERT INTO order_status_history (order_id, from_status, to_status, actor_id, actor_role, note)
        SELECT id, from_status, ${to}, ${by.id}, ${by.role}, ${note ?? null} FROM changed
      ),
      events_written AS (
        INSERT INTO events (type, order_id, payload)
        SELECT ${`order.${to}`}, id, order_document(row, order_items_document(id)) FROM changed
      ),
      jobs AS (
        INSERT INTO outbox (queue, name, payload)
        SELECT ${QUEUES.audit}, ${JOB_NAMES.audit}, jsonb_build_object(
          'actorId', ${by.id}::int, 'action', ${`order.${to}`}::text, 'entity', 'order', 'entityId', c.id,
          'details', jsonb_build_object('from', c.from_status, 'byRole', ${by.role}::text, 'note', ${note ?? null}::text)
            ${details ? sql`|| ${details}` : sql``})
        FROM changed c
        UNION ALL
        SELECT ${QUEUES.orderNotification}, ${JOB_NAMES.orderNotification}, jsonb_build_object('orderId', c.id, 'kind', ${to}::text)
        FROM changed c WHERE ${to}::text IN ('shipped', 'delivered')
      )
      SELECT (SELECT id FROM changed) AS changed, (SELECT status FROM current) AS current`,
  )
  if (!row?.current) throw notFound(`Order ${orderId} not found`)
  if (!row.changed)
    throw new HttpError(
      409,
      row.current === to
        ? `Order ${orderId} is already ${to}`
        : `Order ${orderId} cannot move from ${row.current} to ${to}`,
      {
        status: row.current,
        allowed: allowedMoves(row.current, 'admin'),
      },
    )
  outboxWritten()
  return getOrder(orderId, by)
}

/** The admin's moves: processing, shipped (with its shipment), delivered. */
export function changeStatus(orderId: number, body: StatusChangeBody, by: Principal) {
  return transition({ orderId, to: body.status, by, note: body.note, set: columnsFor(body) })
}

/** What a move sets besides the status: the shipment (required when shipping), the delivery time. */
function columnsFor({ status, carrier, tracking_number }: StatusChangeBody) {
  if (status === 'delivered') return sql`, delivered_at = now()`
  if (status !== 'shipped') return undefined
  if (!carrier || !tracking_number) throw badRequest('A shipped order needs a carrier and a tracking_number')
  return sql`, carrier = ${carrier.trim()}, tracking_number = ${tracking_number.trim()}, shipped_at = now()`
}

/**
 * Cancels an order and puts its units back, exactly once: the restock is part of the status
 * change's statement, so a second cancel finds nothing to change. Products are locked in id
 * order, as orders lock them.
 */
export function cancelOrder(orderId: number, by: Principal) {
  return transition({
    orderId,
    to: 'cancelled',
    by,
    also: sql`
      locked AS (
        SELECT p.id FROM products p
        JOIN order_items i ON i.product_id = p.id JOIN changed c ON c.id = i.order_id
        ORDER BY p.id
        FOR UPDATE OF p
      ),
      restocked AS (
        UPDATE products p SET inventory = p.inventory + i.quantity, updated_at = now()
        FROM order_items i, changed c, locked l
        WHERE i.order_id = c.id AND p.id = i.product_id AND p.id = l.id
        RETURNING p.id AS product_id, i.quantity
      ),`,
    details: sql`jsonb_build_object('restocked',
      (SELECT jsonb_agg(jsonb_build_object('productId', r.product_id, 'quantity', r.quantity)) FROM restocked r))`,
  })
}
