import type { Fragment } from 'postgres'
import { sql } from '../db/client'
import { type Cte, cte, joined, literal } from '../db/cte'
import { into } from '../db/names'
import { events, outbox } from '../db/schema'
import { JOBS, type JobKind } from './definitions'
import type { Change } from './events'

// The only way a statement writes `events` and `outbox` rows in SQL (TypeScript writers use
// recordEvent and enqueue). A feature describes its rows with eventRows / outboxRows, over the
// statement's own steps, and adds one insertEvents / insertOutbox step: the columns, the event
// vocabulary and the queue–name pairs are written here once, and a wrong event type or job kind
// fails the type check.

/** SQL yielding JSON (a parameter given as text, or an expression such as a column). */
type Json = Fragment | string | null

declare const rowsOf: unique symbol
/** A SELECT of rows for one table, made only by the builders below. */
type Rows<Table extends 'events' | 'outbox'> = { readonly [rowsOf]: Table; readonly select: Fragment }

export type EventRows = Rows<'events'>
export type OutboxRows = Rows<'outbox'>

const rows = <Table extends 'events' | 'outbox'>(select: Fragment) => ({ select }) as Rows<Table>

/** What a SELECT reads from, and which of its rows it keeps (`WHERE …` or, aggregating, `HAVING …`). */
type Source = { from?: Fragment; filter?: Fragment }

const source = ({ from, filter }: Source) => sql`${from ? sql`FROM ${from}` : sql``} ${filter ?? sql``}`

/**
 * Events of one type, one per row of the source: `data` is the event's payload (the subject as
 * the API shows it), `orderId` the order it concerns (NULL for none), `trace` its trace context.
 */
export const eventRows = (
  type: Change,
  { data, orderId, trace, ...from }: { data: Fragment; orderId: Fragment; trace: Json } & Source,
): EventRows => rows(sql`SELECT ${literal(type)}::text, (${orderId})::int, ${data}, (${trace})::jsonb ${source(from)}`)

/**
 * Outbox rows of one job kind, one per row of the source: `payload` is the job's data, `traces`
 * the trace contexts it continues (a JSON list, or NULL).
 */
export const outboxRows = (
  kind: JobKind,
  { payload, traces, ...from }: { payload: Fragment; traces: Json } & Source,
): OutboxRows =>
  rows(sql`SELECT ${literal(JOBS[kind].queue)}::text, ${literal(JOBS[kind].name)}::text, ${payload}, (${traces})::jsonb ${source(from)}`)

// The columns every builder's SELECT yields, in this order.
const EVENT_COLUMNS = into(events, ['type', 'orderId', 'payload', 'traceContext'])
const OUTBOX_COLUMNS = into(outbox, ['queue', 'name', 'payload', 'traceContext'])

const insertRows = (name: string, target: Fragment, selects: readonly Rows<'events' | 'outbox'>[]): Cte =>
  cte(
    name,
    sql`INSERT INTO ${target} ${joined(
      selects.map((r) => r.select),
      'UNION ALL',
    )}`,
  )

/** The step that writes the events: each fans out to the webhooks subscribed to its type (trigger). */
export const insertEvents = (name: string, ...events: EventRows[]): Cte => insertRows(name, EVENT_COLUMNS, events)

/** The step that writes outbox rows: jobs that exist if and only if the statement commits. */
export const insertOutbox = (name: string, ...jobs: OutboxRows[]): Cte => insertRows(name, OUTBOX_COLUMNS, jobs)
