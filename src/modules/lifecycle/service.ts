import type { Fragment } from 'postgres'
import { sql } from '../../db/client'
import { type Cte, cte, joined, withSteps } from '../../db/cte'
import { into } from '../../db/names'
import { retryOnConflict } from '../../db/retry'
import { orderStatusHistory } from '../../db/schema'
import { currentTraceCarrier } from '../../lib/tracing'
import type { JobKind } from '../../outbox/definitions'
import { outboxWritten } from '../../outbox/enqueue'
import type { Change } from '../../outbox/events'
import { eventRows, insertEvents, insertOutbox, outboxRows } from '../../outbox/rows'
import { auditJobRows, insertAuditLogs } from '../audit/service'
import type { Principal } from '../auth/guard'

// The status engine: the one place a status changes, for anything that moves through a
// lifecycle (orders, returns). A feature describes its subject and its allowed moves; the engine
// writes each move with everything that goes with it, in one statement.

/** Who moves: its owner (a customer), an admin, or the worker. */
export type Mover = 'owner' | 'admin' | 'worker'

/** One allowed move of a lifecycle, and who may make it. */
export type Transition<S extends string> = { from: S; to: S; by: readonly Mover[] }

/** The statuses from which `mover` may move to `to`, in a lifecycle. */
export const fromStatusesIn = <S extends string>(transitions: readonly Transition<S>[], to: S, mover: Mover): S[] =>
  transitions.filter((t) => t.to === to && t.by.includes(mover)).map((t) => t.from)

/** Where `mover` may move from `status`, in a lifecycle (possibly nowhere). */
export const allowedMovesIn = <S extends string>(transitions: readonly Transition<S>[], status: S, mover: Mover): S[] =>
  transitions.filter((t) => t.from === status && t.by.includes(mover)).map((t) => t.to)

/** Who moves: a signed-in customer or admin, or the worker (its own confirmation). */
export type By = Principal | 'worker'

/**
 * What moves through a lifecycle: a table with `id`, `user_id` (the owner), `status` and
 * `updated_at`, its allowed moves, and what goes with each move. `To` are the statuses a move
 * can reach, each with its event from the vocabulary.
 */
export type Subject<S extends string, To extends S> = {
  /** The audit entity (and the audit keys' prefix: `order-shipped:7`). */
  entity: 'order' | 'return'
  table: 'orders' | 'returns'
  statusType: 'order_status' | 'return_status'
  transitions: readonly Transition<S>[]
  /** The event each move writes (`order.shipped`, `return.received`). */
  events: Readonly<Record<To, Change>>
  /** SQL over a `changed` row (`id`, `row`, the row as it now is): the event's data, and its order. */
  document: Fragment
  orderId: Fragment
  /** Orders keep every status they have been in (order_status_history). */
  history: boolean
  /** The customer is told of these statuses by a job of this kind, whose payload is SQL over `changed`. */
  notify: { statuses: readonly To[]; job: JobKind; payload: (to: To) => Fragment }
}

export type Move<To extends string> = {
  ids: readonly number[]
  to: To
  by: By
  note?: string
  /** More columns to set with the status, each `column = value` (the shipment, the delivery time). */
  set?: readonly Fragment[]
  /** More steps of the statement, over `changed` (id, user_id, from_status, row): a restock, say. */
  also?: readonly Cte[]
  /** Audit details beyond the previous status, the mover's role and the note (SQL over `changed`). */
  details?: Fragment
}

const HISTORY_COLUMNS = into(orderStatusHistory, ['orderId', 'fromStatus', 'toStatus', 'actorId', 'actorRole', 'note'])

const moverOf = (by: By): Mover => (by === 'worker' ? 'worker' : by.role === 'admin' ? 'admin' : 'owner')

/**
 * Moves rows of a subject to `to`, each only from a status its lifecycle allows for this mover,
 * in one statement: the rows are locked (in id order), so of concurrent identical moves exactly
 * one succeeds, and with each change, in the same transaction, go its history entry (orders),
 * its event (the row's document as it now is), its audit entry and, for the statuses the
 * customer hears of, the notification job.
 *
 * The audit entry is a job for the worker, except when the worker itself moves: it writes the
 * entry here. Both are keyed `<entity>-<to>:<id>`, so a second run writes nothing.
 * Returns each row found (a customer finds only theirs): its status now, and whether it moved.
 */
export async function moveStatus<S extends string, To extends S>(
  subject: Subject<S, To>,
  { ids, to, by, note, set = [], also = [], details }: Move<To>,
) {
  const mover = moverOf(by)
  const actor = by === 'worker' ? { id: null, role: null } : by
  const table = sql(subject.table)
  const statusType = sql(subject.statusType)
  const event = subject.events[to]
  // The request's or job's trace context, for the events and jobs this move writes.
  const carrier = currentTraceCarrier()
  const trace = carrier && JSON.stringify(carrier)
  const traces = carrier && JSON.stringify([carrier])
  const audit = {
    fact: `${subject.entity}-${to}`,
    actorId: sql`${actor.id}::int`,
    action: event,
    entity: subject.entity,
    entityId: sql`c.id`,
    details: sql`jsonb_build_object('from', c.from_status, 'byRole', ${actor.role}::text, 'note', ${note ?? null}::text)
      ${details ? sql`|| ${details}` : sql``}`,
  }
  const changed = sql`changed c`
  const notifies = subject.notify.statuses.includes(to)
  const rows = await retryOnConflict(
    () => sql<{ id: number; status: S; moved: boolean }[]>`${withSteps(
      [
        cte(
          'current',
          sql`SELECT id, status FROM ${table}
            WHERE id = ANY(${ids as number[]}::int[]) ${mover === 'owner' ? sql`AND user_id = ${actor.id}` : sql``}
            ORDER BY id
            FOR UPDATE`,
        ),
        cte(
          'changed',
          sql`UPDATE ${table} o SET ${joined([sql`status = ${to}::${statusType}`, sql`updated_at = now()`, ...set], ',')}
            FROM current c
            WHERE o.id = c.id AND c.status = ANY(${fromStatusesIn(subject.transitions, to, mover)}::${statusType}[])
            RETURNING o.id, o.user_id, c.status AS from_status, o AS row`,
        ),
        ...also,
        subject.history &&
          cte(
            'history',
            sql`INSERT INTO ${HISTORY_COLUMNS}
              SELECT id, from_status, ${to}, ${actor.id}::int, ${actor.role}::user_role, ${note ?? null} FROM changed`,
          ),
        insertEvents(
          'events_written',
          eventRows(event, { orderId: subject.orderId, data: subject.document, trace, from: sql`changed` }),
        ),
        by === 'worker' && insertAuditLogs('audits', audit, { from: changed }),
        (by !== 'worker' || notifies) &&
          insertOutbox(
            'jobs',
            ...(by !== 'worker' ? [auditJobRows(audit, { from: changed, traces })] : []),
            ...(notifies
              ? [outboxRows(subject.notify.job, { payload: subject.notify.payload(to), traces, from: changed })]
              : []),
          ),
      ],
      sql`SELECT c.id, CASE WHEN m.id IS NULL THEN c.status ELSE ${to} END AS status, m.id IS NOT NULL AS moved
        FROM current c LEFT JOIN changed m ON m.id = c.id`,
    )}`,
  )
  if (rows.some((row) => row.moved)) outboxWritten()
  return rows
}
