import type { Fragment } from 'postgres'
import { config } from '../../config'
import { sql } from '../../db/client'
import { type Cte, cte, withSteps } from '../../db/cte'
import { into } from '../../db/names'
import { retryOnConflict } from '../../db/retry'
import { returnItems, returns } from '../../db/schema'
import { badRequest, conflict, HttpError, notFound } from '../../lib/errors'
import { readPage } from '../../lib/model'
import { currentTraceCarrier } from '../../lib/tracing'
import { outboxWritten } from '../../outbox/enqueue'
import { eventRows, insertEvents, insertOutbox } from '../../outbox/rows'
import { auditJobRows } from '../audit/service'
import type { Principal } from '../auth/guard'
import { moveStatus, type Subject, type Transition } from '../lifecycle/service'
import { getOrder, mergeLines } from '../orders/service'
import { restockSteps, stockChanged } from '../products/service'
import type { CreateReturnBody, ReceiveReturnBody, RejectReturnBody, Return, ReturnStatus } from './model'

// Returns of delivered orders. A return is read as the return_document SQL function writes it
// (migration 0022): responses and the data of its return.* events alike.

/** The return lifecycle: an admin receives or rejects a requested return, and that is final. */
export const RETURN_TRANSITIONS: readonly Transition<ReturnStatus>[] = [
  { from: 'requested', to: 'received', by: ['admin'] },
  { from: 'requested', to: 'rejected', by: ['admin'] },
]

/** Returns move through the same mechanism as orders; the customer hears of received and rejected. */
const RETURNS: Subject<ReturnStatus, 'received' | 'rejected'> = {
  entity: 'return',
  table: 'returns',
  statusType: 'return_status',
  transitions: RETURN_TRANSITIONS,
  events: { received: 'return.received', rejected: 'return.rejected' },
  document: sql`return_document(row)`,
  orderId: sql`(row).order_id`,
  history: false,
  notify: {
    statuses: ['received', 'rejected'],
    job: 'returnNotification',
    payload: (to) => sql`jsonb_build_object('returnId', c.id, 'kind', ${to}::text)`,
  },
}

const RETURN_COLUMNS = into(returns, ['orderId', 'userId', 'refundCents', 'reason'])
const RETURN_LINE_COLUMNS = into(returnItems, ['returnId', 'productId', 'name', 'unitPriceCents', 'quantity', 'refundCents'])

type ReturnableLine = { product_id: number; name: string; unit_price_cents: number; returnable: number }

/**
 * Requests a return of a delivered order (its owner or an admin). The order row is locked first,
 * so concurrent requests for one order run one after the other, each seeing what the earlier
 * ones hold: together they never return more of a product than the order delivered minus what
 * its returns that are not rejected already hold.
 */
export async function requestReturn(orderId: number, body: CreateReturnBody, by: Principal): Promise<Return> {
  const { productIds, quantities } = mergeLines(body.items)
  const carrier = currentTraceCarrier()
  const created = await retryOnConflict(() =>
    sql.begin(async (tx) => {
      const [order] = await tx<{ status: string; user_id: number; in_window: boolean | null }[]>`
        SELECT status, user_id,
          delivered_at >= now() - make_interval(days => ${config.RETURN_WINDOW_DAYS}) AS in_window
        FROM orders WHERE id = ${orderId} ${by.role === 'admin' ? sql`` : sql`AND user_id = ${by.id}`}
        FOR UPDATE`
      if (!order) throw notFound(`Order ${orderId} not found`)
      const returnable = await tx<ReturnableLine[]>`
        SELECT i.product_id, i.name, i.unit_price_cents, i.quantity - coalesce((
          SELECT sum(ri.quantity) FROM return_items ri JOIN returns r ON r.id = ri.return_id
          WHERE r.order_id = i.order_id AND ri.product_id = i.product_id AND r.status <> 'rejected'), 0)::int AS returnable
        FROM order_items i WHERE i.order_id = ${orderId} AND i.product_id = ANY(${productIds}::int[])`
      const byProduct = new Map(returnable.map((line) => [line.product_id, line]))
      const notALine = productIds.find((productId) => !byProduct.has(productId))
      if (notALine !== undefined) throw badRequest(`Product ${notALine} is not a line of order ${orderId}`)
      if (order.status !== 'delivered')
        throw conflict(`Order ${orderId} is ${order.status}: only a delivered order can be returned`)
      if (!order.in_window)
        throw conflict(`Order ${orderId}'s return window (${config.RETURN_WINDOW_DAYS} days after delivery) has closed`)
      const items = productIds.map((productId, line) => {
        const returnable = byProduct.get(productId)!
        const quantity = quantities[line]!
        return { ...returnable, quantity, refund_cents: returnable.unit_price_cents * quantity }
      })
      const tooMany = items.find((item) => item.quantity > item.returnable)
      if (tooMany)
        throw conflict(
          `Product ${tooMany.product_id}: at most ${tooMany.returnable} more can be returned from order ${orderId}`,
        )
      const [row] = await tx<{ id: number }[]>`
        WITH created AS (
          INSERT INTO ${RETURN_COLUMNS}
          VALUES (${orderId}, ${order.user_id}, ${items.reduce((sum, item) => sum + item.refund_cents, 0)}, ${body.reason ?? null})
          RETURNING id
        ),
        lines AS (
          INSERT INTO ${RETURN_LINE_COLUMNS}
          SELECT c.id, l.* FROM created c, unnest(${items.map((i) => i.product_id)}::int[], ${items.map((i) => i.name)}::text[],
            ${items.map((i) => i.unit_price_cents)}::int[], ${items.map((i) => i.quantity)}::int[],
            ${items.map((i) => i.refund_cents)}::bigint[]) AS l
        )
        SELECT id FROM created`
      // Its event and audit job, in the same transaction (a statement of its own: the one above
      // cannot see its own lines).
      const trace = carrier && JSON.stringify(carrier)
      const [written] = await tx<{ body: Return }[]>`${withSteps(
        [
          cte(
            'document',
            sql`SELECT r.id, r.order_id, return_document(r) AS body FROM returns r WHERE r.id = ${row!.id}`,
          ),
          insertEvents(
            'events_written',
            eventRows('return.requested', { orderId: sql`order_id`, data: sql`body`, trace, from: sql`document` }),
          ),
          insertOutbox(
            'jobs',
            auditJobRows(
              {
                fact: 'return-requested',
                actorId: sql`${by.id}::int`,
                action: 'return.requested',
                entity: 'return',
                entityId: sql`d.id`,
                details: sql`jsonb_build_object('orderId', d.order_id, 'byRole', ${by.role}::text,
                  'items', d.body->'items', 'refundCents', d.body->'refund_cents')`,
              },
              { from: sql`document d`, traces: carrier && JSON.stringify([carrier]) },
            ),
          ),
        ],
        sql`SELECT body FROM document`,
      )}`
      return written!.body
    }),
  )
  outboxWritten()
  return created
}

/**
 * Moves a requested return on (an admin): 404 when there is none, 409 when it is no longer
 * requested (of concurrent moves exactly one succeeds). Returns it as it now is.
 */
async function moveReturn(
  id: number,
  to: 'received' | 'rejected',
  by: Principal,
  note: string | undefined,
  more: { also?: Cte[]; details?: Fragment } = {},
) {
  const [row] = await moveStatus(RETURNS, { ids: [id], to, by, note, set: [sql`note = ${note ?? null}`], ...more })
  if (!row) throw notFound(`Return ${id} not found`)
  if (!row.moved)
    throw new HttpError(
      409,
      row.status === to ? `Return ${id} is already ${to}` : `Return ${id} cannot move from ${row.status} to ${to}`,
      { status: row.status },
    )
  return getReturn(id)
}

/**
 * Receives a return. With `restock` (the default) each line's units go back to its product's
 * stock in the same statement as the status change, so exactly once; products are locked in id
 * order, as orders lock them, and a product deleted meanwhile (even by a delete that commits
 * while this waits for its lock) is not restocked.
 */
export async function receiveReturn(id: number, body: ReceiveReturnBody, by: Principal) {
  const restock = body.restock ?? true
  const received = await moveReturn(
    id,
    'received',
    by,
    body.note,
    restock
      ? {
          also: restockSteps(
            sql`SELECT i.product_id, i.quantity FROM return_items i JOIN changed c ON c.id = i.return_id`,
            { skipDeleted: true },
          ),
          details: sql`jsonb_build_object('restocked', coalesce(
            (SELECT jsonb_agg(jsonb_build_object('productId', r.product_id, 'quantity', r.quantity) ORDER BY r.product_id)
              FROM restocked r), '[]'::jsonb))`,
        }
      : { details: sql`jsonb_build_object('restocked', '[]'::jsonb)` },
  )
  if (restock) stockChanged(received.items.map((item) => item.product_id))
  return received
}

export const rejectReturn = (id: number, body: RejectReturnBody, by: Principal) =>
  moveReturn(id, 'rejected', by, body.note.trim())

async function getReturn(id: number): Promise<Return> {
  const [row] = await sql<{ body: Return }[]>`SELECT return_document(r) AS body FROM returns r WHERE r.id = ${id}`
  if (!row) throw notFound(`Return ${id} not found`)
  return row.body
}

/** An order's returns, oldest first, for whoever may see the order (else 404). */
export async function listReturnsOfOrder(orderId: number, viewer: Principal) {
  await getOrder(orderId, viewer)
  const rows = await sql<{ body: Return }[]>`
    SELECT return_document(r) AS body FROM returns r WHERE r.order_id = ${orderId} ORDER BY r.id`
  return { data: rows.map((row) => row.body) }
}

/** Every return, newest first, optionally of one status (admin). */
export async function listReturns(
  status: ReturnStatus | undefined,
  { page, limit, offset }: { page: number; limit: number; offset: number },
) {
  const where = status ? sql`WHERE r.status = ${status}` : sql``
  return readPage(
    sql<{ body: Return }[]>`
      SELECT return_document(r) AS body FROM returns r ${where} ORDER BY r.id DESC LIMIT ${limit} OFFSET ${offset}`.then(
      (rows) => rows.map((row) => row.body),
    ),
    sql<{ total: number }[]>`SELECT count(*)::int AS total FROM returns r ${where}`,
    { page, limit },
  )
}
