import { sql } from '../../db/client'
import { retryOnConflict } from '../../db/retry'
import { JOB_NAMES, QUEUES } from '../../jobs/definitions'
import { outboxWritten } from '../../jobs/outbox'
import { conflict } from '../../lib/errors'
import type { Principal } from '../auth/guard'
import { getOrder } from './service'

/**
 * Cancels an order and puts its units back, exactly once: the status change is a conditional
 * update (only from pending or confirmed), and the restock happens in the same statement, so a
 * second cancel finds nothing to change. Products are locked in id order, as orders lock them.
 */
export async function cancelOrder(orderId: number, by: Principal) {
  const onlyOwn = by.role === 'admin' ? sql`` : sql`AND user_id = ${by.id}`
  const [cancelled] = await retryOnConflict(
    () => sql<{ id: number }[]>`
      WITH cancelled AS (
        UPDATE orders SET status = 'cancelled', updated_at = now()
        WHERE id = ${orderId} AND status IN ('pending', 'confirmed') ${onlyOwn}
        RETURNING id
      ),
      locked AS (
        SELECT p.id FROM products p
        JOIN order_items i ON i.product_id = p.id JOIN cancelled c ON c.id = i.order_id
        ORDER BY p.id
        FOR UPDATE OF p
      ),
      restocked AS (
        UPDATE products p SET inventory = p.inventory + i.quantity, updated_at = now()
        FROM order_items i, cancelled c, locked l
        WHERE i.order_id = c.id AND p.id = i.product_id AND p.id = l.id
        RETURNING p.id AS product_id, i.quantity
      ),
      jobs AS (
        INSERT INTO outbox (queue, name, payload)
        SELECT ${QUEUES.audit}, ${JOB_NAMES.audit}, jsonb_build_object(
          'actorId', ${by.id}::int, 'action', 'order.cancelled', 'entity', 'order', 'entityId', c.id,
          'details', jsonb_build_object('byRole', ${by.role}::text,
            'restocked', (SELECT jsonb_agg(jsonb_build_object('productId', r.product_id, 'quantity', r.quantity)) FROM restocked r)))
        FROM cancelled c
      )
      SELECT id FROM cancelled`,
  )
  if (cancelled) {
    outboxWritten()
    return getOrder(orderId, by)
  }
  const order = await getOrder(orderId, by) // 404 for an unknown order or someone else's
  if (order.status === 'cancelled') throw conflict(`Order ${orderId} is already cancelled`)
  throw conflict(`Order ${orderId} cannot be cancelled now`)
}
