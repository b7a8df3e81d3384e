import type { Fragment } from 'postgres'
import { sql } from '../../db/client'
import { retryOnConflict } from '../../db/retry'
import { JOB_NAMES, QUEUES, type QueueName } from '../../outbox/definitions'
import { outboxWritten } from '../../outbox/enqueue'
import { badRequest, HttpError, notFound } from '../../lib/errors'
import { currentTraceCarrier } from '../../lib/tracing'
import type { Principal } from '../auth/guard'
import { allowedMoves, fromStatusesIn, type Mover, TRANSITIONS, type Transition } from './lifecycle'
import type { OrderStatus, StatusChangeBody } from './model'
import { getOrder } from './service'
import { stockChanged } from '../products/service'

/** Who moves: a signed-in customer or admin, or the worker (its own confirmation). */
type By = Principal | 'worker'

type Move<S extends string> = {
  ids: readonly number[]
  to: S
  by: By
  note?: string
  /** More columns to set with the status (the shipment, the delivery time). */
  set?: Fragment
  /** More statements over `changed` (id, user_id, from_status, row), as CTEs each ending in a comma. */
  also?: Fragment
  /** Audit details beyond the previous status, the mover's role and the note. */
  details?: Fragment
}

/**
 * What moves through a lifecycle: a table with `id`, `user_id` (the owner), `status` and
 * `updated_at`, its allowed moves, and what goes with each move.
 */
export type Subject<S extends string> = {
  /** The audit entity and the events' prefix (`order.shipped`, `return.received`). */
  entity: 'order' | 'return'
  table: 'orders' | 'returns'
  statusType: 'order_status' | 'return_status'
  transitions: readonly Transition<S>[]
  /** SQL over a `changed` row (`id`, `row`, the row as it now is): the event's data, and its order. */
  document: () => Fragment
  orderId: () => Fragment
  /** Orders keep every status they have been in (order_status_history). */
  history: boolean
  /** The customer is told of these statuses by a job of this queue, whose payload is SQL over `c`. */
  notify: { statuses: readonly S[]; queue: QueueName; name: string; payload: (to: S) => Fragment }
}

const moverOf = (by: By): Mover => (by === 'worker' ? 'worker' : by.role === 'admin' ? 'admin' : 'owner')

/**
 * Moves rows of a subject (orders, returns) to `to`, each only from a status its lifecycle allows
 * for this mover, in one statement: the rows are locked (in id order), so of concurrent identical
 * moves exactly one succeeds, and with each change, in the same transaction, go its history entry
 * (orders), its event (the row's document as it now is), its audit entry and, for the statuses
 * the customer hears of, the notification job. The only place a status changes, for one row or many.
 *
 * The audit entry is a job for the worker, except when the worker itself moves: it writes the
 * entry here, keyed so that a second run writes nothing.
 * Returns each row found (a customer finds only theirs): its status now, and whether it moved.
 */
export async function moveStatus<S extends string>(
  subject: Subject<S>,
  { ids, to, by, note, set, also, details }: Move<S>,
) {
  const mover = moverOf(by)
  const actor = by === 'worker' ? { id: null, role: null } : by
  const table = sql(subject.table)
  const statusType = sql(subject.statusType)
  const event = `${subject.entity}.${to}`
  // The request's or job's trace context, for the events and jobs this move writes.
  const carrier = currentTraceCarrier()
  const trace = carrier && JSON.stringify(carrier)
  const traced = carrier && JSON.stringify([carrier])
  const auditDetails = sql`jsonb_build_object('from', c.from_status, 'byRole', ${actor.role}::text, 'note', ${note ?? null}::text)
    ${details ? sql`|| ${details}` : sql``}`
  const rows = await retryOnConflict(
    () => sql<{ id: number; status: S; moved: boolean }[]>`
      WITH current AS (
        SELECT id, status FROM ${table}
        WHERE id = ANY(${ids as number[]}::int[]) ${mover === 'owner' ? sql`AND user_id = ${actor.id}` : sql``}
        ORDER BY id
        FOR UPDATE
      ),
      changed AS (
        UPDATE ${table} o SET status = ${to}::${statusType}, updated_at = now() ${set ?? sql``}
        FROM current c
        WHERE o.id = c.id AND c.status = ANY(${fromStatusesIn(subject.transitions, to, mover)}::${statusType}[])
        RETURNING o.id, o.user_id, c.status AS from_status, o AS row
      ),
      ${also ?? sql``}
      ${
        subject.history
          ? sql`history AS (
        INSERT INTO order_status_history (order_id, from_status, to_status, actor_id, actor_role, note)
        SELECT id, from_status, ${to}, ${actor.id}::int, ${actor.role}::user_role, ${note ?? null} FROM changed
      ),`
          : sql``
      }
      events_written AS (
        INSERT INTO events (type, order_id, payload, trace_context)
        SELECT ${event}, ${subject.orderId()}, ${subject.document()}, ${trace}::jsonb FROM changed
      ),
      ${
        by === 'worker'
          ? sql`audits AS (
        INSERT INTO audit_logs (job_key, actor_id, action, entity, entity_id, details)
        SELECT ${`${subject.entity}-${to}:`} || c.id, NULL, ${event}, ${subject.entity}, c.id, ${auditDetails}
        FROM changed c
        ON CONFLICT (job_key) DO NOTHING
      ),`
          : sql``
      }
      jobs AS (
        INSERT INTO outbox (queue, name, payload, trace_context)
        SELECT ${QUEUES.audit}, ${JOB_NAMES.audit}, jsonb_build_object(
          'actorId', ${actor.id}::int, 'action', ${event}::text, 'entity', ${subject.entity}::text, 'entityId', c.id,
          'details', ${auditDetails}), ${traced}::jsonb
        FROM changed c WHERE ${by !== 'worker'}
        UNION ALL
        SELECT ${subject.notify.queue}, ${subject.notify.name}, ${subject.notify.payload(to)}, ${traced}::jsonb
        FROM changed c WHERE ${subject.notify.statuses.includes(to)}
      )
      SELECT c.id, CASE WHEN m.id IS NULL THEN c.status ELSE ${to} END AS status, m.id IS NOT NULL AS moved
      FROM current c LEFT JOIN changed m ON m.id = c.id`,
  )
  if (rows.some((row) => row.moved)) outboxWritten()
  return rows
}

/** Orders, through the order lifecycle (lifecycle.ts); shipped and delivered are notified. */
const ORDERS: Subject<OrderStatus> = {
  entity: 'order',
  table: 'orders',
  statusType: 'order_status',
  transitions: TRANSITIONS,
  document: () => sql`order_document(row, order_items_document(id))`,
  orderId: () => sql`id`,
  history: true,
  notify: {
    statuses: ['shipped', 'delivered'],
    queue: QUEUES.orderNotification,
    name: JOB_NAMES.orderNotification,
    payload: (to) => sql`jsonb_build_object('orderId', c.id, 'kind', ${to}::text)`,
  },
}

/** Moves orders (moveStatus): the customer's, an admin's and the worker's moves alike. */
export const moveOrders = ({ orderIds, ...move }: Omit<Move<OrderStatus>, 'ids'> & { orderIds: readonly number[] }) =>
  moveStatus(ORDERS, { ids: orderIds, ...move })

/**
 * Moves one order for a customer or an admin (moveOrders). Refused → 404 (unknown, or not the
 * caller's) or 409 with the current status and the moves an admin could make now.
 */
export async function transition({
  orderId,
  ...move
}: Omit<Move<OrderStatus>, 'ids' | 'by'> & { orderId: number; by: Principal }) {
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
export async function cancelOrder(orderId: number, by: Principal) {
  const order = await transition({
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
  stockChanged(order.items.map((item) => item.product_id))
  return order
}
