import type { Fragment } from 'postgres'
import { sql } from '../../db/client'
import { type Cte, cte, literal } from '../../db/cte'
import { into } from '../../db/names'
import { auditLogs } from '../../db/schema'
import { type AuditEntry, type AuditPayload, JOBS, type OutboxJob } from '../../outbox/definitions'
import type { Change } from '../../outbox/events'
import { outboxRows } from '../../outbox/rows'

// The audit log: who did what to which order, product or return. Every feature records its
// changes here, through an audit job in the outbox (written with the change, so it exists if and
// only if the change does) that the worker turns into `audit_logs` rows.
//
// An entry's key makes a second write of it a no-op. A fact that happens once is keyed by what
// it is: `<entity>-<change>:<id>` (`order-placed:7`, `order-shipped:7`, `return-requested:3`),
// whichever path wrote it. A fact that can happen again (a product's update, a low-stock
// crossing) is keyed by the outbox row that carries it (`outbox-<id>`, given by the relay).

const AUDIT_LOG_COLUMNS = into(auditLogs, ['jobKey', 'actorId', 'action', 'entity', 'entityId', 'details'])

/** SQL of one entry's fields (expressions over the statement's own rows). */
type EntrySql = {
  /** The fact's key, before the id: `order-placed` gives `order-placed:<id>`. */
  fact: string
  actorId: Fragment
  action: Change
  entity: AuditPayload['entity']
  entityId: Fragment
  details: Fragment
}

/**
 * Audit rows for a statement: one job carrying an entry per row of `from` (none when there is
 * no row), continuing `traces`.
 */
export const auditJobRows = (
  { fact, actorId, action, entity, entityId, details }: EntrySql,
  { from, traces, orderBy }: { from: Fragment; traces: Fragment | string | null; orderBy?: Fragment },
) =>
  outboxRows('audit', {
    payload: sql`jsonb_build_object('entries', jsonb_agg(jsonb_build_object(
      'key', ${literal(`${fact}:`)}::text || (${entityId}), 'actorId', (${actorId})::int, 'action', ${literal(action)}::text,
      'entity', ${literal(entity)}::text, 'entityId', ${entityId}, 'details', ${details})
      ${orderBy ? sql`ORDER BY ${orderBy}` : sql``}))`,
    traces,
    from,
    filter: sql`HAVING count(*) > 0`,
  })

/**
 * The step that writes audit rows at once, for a change the worker itself makes (it is the
 * audit's consumer already): keyed as the job's entries are, so a second run writes nothing.
 */
export const insertAuditLogs = (name: string, entry: EntrySql, { from }: { from: Fragment }): Cte =>
  cte(
    name,
    sql`INSERT INTO ${AUDIT_LOG_COLUMNS}
      SELECT ${literal(`${entry.fact}:`)}::text || (${entry.entityId}), (${entry.actorId})::int, ${literal(entry.action)}::text,
        ${literal(entry.entity)}::text, ${entry.entityId}, ${entry.details}
      FROM ${from}
      ON CONFLICT (job_key) DO NOTHING`,
  )

/** An audit job for a change made in TypeScript (see enqueue), keyed by its outbox row. */
export const auditJob = (payload: AuditPayload): OutboxJob => ({ ...JOBS.audit, payload })

/**
 * Writes the audit rows of many jobs in one statement; each entry's key makes a second run a
 * no-op. (JSON is passed as text: Drizzle replaces postgres.js's JSON serializer on the shared
 * client.)
 */
export async function writeAudits(entries: AuditEntry[]) {
  await sql`
    INSERT INTO ${AUDIT_LOG_COLUMNS}
    SELECT * FROM unnest(${entries.map((e) => e.key)}::text[], ${entries.map((e) => e.actorId)}::int[],
      ${entries.map((e) => e.action)}::text[], ${entries.map((e) => e.entity)}::text[],
      ${entries.map((e) => e.entityId)}::int[], ${entries.map((e) => JSON.stringify(e.details))}::jsonb[])
    ON CONFLICT (job_key) DO NOTHING`
}
