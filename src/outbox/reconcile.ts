import type { JobState } from 'bullmq'
import { sql } from '../db/client'
import { logger } from '../lib/logger'
import { QUEUES, type QueueName } from './definitions'
import { reconciledItems } from './queue-metrics'
import type { Queues } from './queues'
import { addTraced, markRelayed, OutboxRelay, type OutboxRow, toJobs } from './relay'

// The outbox promises that every job written in a committed transaction runs. Handing a row to
// BullMQ is not enough for that: Redis can lose the job (a restart without AOF, a failover, a
// flush, an eviction), and a job can spend its attempts on faults that were not its target's
// (the database down during every attempt). So the reconciler, a job scheduler of the worker,
// looks at rows relayed more than RECONCILE_AFTER_SECONDS ago whose effect is not done yet:
// their job is asked for, and a row whose job is gone or no longer live goes to BullMQ again,
// under a new job id (a webhook delivery under its own, once the spent job is removed). The
// handlers are idempotent (claims before sends, conditional status changes, keyed audit rows),
// so a job that turns up twice does its effect once.

/** Job states in which a job will still run without anyone's help. */
const LIVE: ReadonlySet<JobState | 'unknown'> = new Set([
  'waiting',
  'active',
  'delayed',
  'prioritized',
  'waiting-children',
])

const CHUNK = 500

type Candidate = OutboxRow & { job_id: string | null; finished: boolean | null }

/**
 * Whether an outbox row's effect is in the database: SQL over the row (`row` is its alias, with
 * its `queue` and `payload`), from the module that owns the queue (its jobs.ts). A payload of the
 * wrong shape must count as done: no job can do it (its failed job says why).
 */
export type EffectDone = (row: string) => string
export type EffectChecks = Partial<Record<QueueName, EffectDone>>

/** SQL: the payload field at `path` (text) as an int, or null when it is not one. */
export const payloadInt = (path: string) => `CASE WHEN ${path} ~ '^[0-9]{1,9}$' THEN (${path})::int END`

// Null for a queue no module checks: the job's state must tell.
const finishedSql = (checks: EffectChecks, row: string) => {
  const cases = Object.entries(checks).map(([queue, done]) => `WHEN '${queue}' THEN ${done!(row)}`)
  return sql.unsafe(cases.length ? `CASE ${row}.queue ${cases.join(' ')} END` : 'NULL::boolean')
}

export type ReconcileResult = Record<QueueName | 'unrelayed', number>

/**
 * One pass: rows never relayed though old enough (no API is relaying) are relayed; relayed rows
 * whose effect is done are marked so (and never looked at again); the others whose job is not
 * live are handed to BullMQ again. Returns how many items of each kind it brought back.
 */
export async function reconcile(queues: Queues, afterSeconds: number, checks: EffectChecks): Promise<ReconcileResult> {
  const found = Object.fromEntries([...Object.values(QUEUES), 'unrelayed'].map((kind) => [kind, 0])) as ReconcileResult
  found.unrelayed = await relayForgottenRows(queues, afterSeconds)
  const stamp = Date.now().toString(36)
  let examined: number
  do examined = await reconcileChunk(queues, afterSeconds, checks, stamp, found)
  while (examined === CHUNK)
  const total = Object.values(found).reduce((sum, count) => sum + count, 0)
  for (const [kind, count] of Object.entries(found)) if (count) reconciledItems.inc({ kind }, count)
  if (total) logger.warn({ reconciled: found }, 'reconciler: work whose job was lost or spent was handed over again')
  return found
}

/**
 * Looks at up to CHUNK rows. Each leaves the candidates: done, handed over again, or (its job
 * still live, or its queue unknown here) looked at again one period later.
 */
async function reconcileChunk(
  queues: Queues,
  afterSeconds: number,
  checks: EffectChecks,
  stamp: string,
  found: ReconcileResult,
) {
  return sql.begin(async (tx) => {
    const rows = await tx<Candidate[]>`
      WITH candidates AS (
        SELECT id, queue, name, payload, trace_context, job_id FROM outbox
        WHERE done_at IS NULL AND sent_at < now() - make_interval(secs => ${afterSeconds})
        ORDER BY sent_at LIMIT ${CHUNK}
        FOR UPDATE SKIP LOCKED
      ),
      checked AS (SELECT c.*, ${finishedSql(checks, 'c')} AS finished FROM candidates c),
      done AS (UPDATE outbox SET done_at = now() FROM checked WHERE outbox.id = checked.id AND checked.finished)
      SELECT id, queue, name, payload, trace_context, job_id, finished FROM checked`
    const open = rows.filter((row) => !row.finished && queues[row.queue])
    const states = new Map<string, JobState | 'unknown'>()
    for (const row of open) if (row.job_id) states.set(`${row.queue}/${row.job_id}`, 'unknown')
    await Promise.all(
      [...states.keys()].map(async (key) => {
        const [queue, jobId] = [key.slice(0, key.indexOf('/')), key.slice(key.indexOf('/') + 1)]
        states.set(key, await queues[queue as QueueName].getJobState(jobId))
      }),
    )
    const stateOf = (row: Candidate) => (row.job_id ? states.get(`${row.queue}/${row.job_id}`)! : 'unknown')
    // A row of a kind the database cannot check is done when its job completed.
    const completed = open.filter((row) => row.finished === null && stateOf(row) === 'completed')
    const lost = open.filter((row) => !LIVE.has(stateOf(row)) && !completed.includes(row))
    const later = rows.filter((row) => !row.finished && !completed.includes(row) && !lost.includes(row))
    await tx`UPDATE outbox SET done_at = now() WHERE id = ANY(${completed.map((row) => row.id)}::bigint[])`
    await tx`UPDATE outbox SET sent_at = now() WHERE id = ANY(${later.map((row) => row.id)}::bigint[])`
    // A delivery keeps its one job id: its spent job makes way. Other rows' jobs get new ids.
    for (const row of lost)
      if (row.queue === QUEUES.webhooks && row.job_id && stateOf(row) !== 'unknown')
        await queues[row.queue].remove(row.job_id)
    const jobs = [...Map.groupBy(lost, (row) => row.queue)].flatMap(([queue, queued]) =>
      toJobs(queue, queued).map((job) => ({
        queue,
        ...job,
        opts: { jobId: queue === QUEUES.webhooks ? job.opts.jobId : `${job.opts.jobId}-r${stamp}` },
      })),
    )
    for (const [queue, queued] of Map.groupBy(jobs, (job) => job.queue)) await addTraced(queues[queue], queued)
    await markRelayed(tx, jobs)
    for (const row of lost) found[row.queue] += 1
    return rows.length
  })
}

/** Relays rows older than `afterSeconds` that no API process has relayed; returns how many. */
async function relayForgottenRows(queues: Queues, afterSeconds: number) {
  const [row] = await sql<{ count: number }[]>`
    SELECT count(*)::int AS count FROM outbox
    WHERE sent_at IS NULL AND created_at < now() - make_interval(secs => ${afterSeconds})`
  const count = row?.count ?? 0
  if (!count) return 0
  const relay = new OutboxRelay(queues)
  while ((await relay.relayBatch()) > 0);
  return count
}
