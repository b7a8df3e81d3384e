import type { Job } from 'bullmq'
import { logger } from '../../lib/logger'
import { AuditJob, AuditPayload, JOB_NAMES, QUEUES } from '../../outbox/definitions'
import type { EffectChecks } from '../../outbox/reconcile'
import { checked, type JobContext, type QueueHandler } from '../../outbox/workers'
import { writeAudits } from './service'

// The audit's background work, run by the worker for every feature: audit jobs become rows.

/** Audit entries in one statement; when it fails, each entry is retried as a job of its own. */
async function auditBatch(job: Job, { producers }: JobContext) {
  const data = checked(job, AuditJob, AuditPayload)
  const entries = 'entries' in data ? data.entries : [{ ...data, key: job.id! }]
  try {
    await writeAudits(entries)
  } catch (error) {
    if (entries.length === 1) throw error
    logger.warn({ err: error, jobId: job.id }, 'audit entries split off for retry')
    await producers[QUEUES.audit].addBulk(
      entries.map((entry) => ({
        name: JOB_NAMES.audit,
        data: { entries: [entry] },
        opts: { jobId: `${job.id}-${entry.key}` },
      })),
    )
  }
}

export const auditJobs: QueueHandler[] = [{ queue: QUEUES.audit, process: auditBatch }]

/** For the reconciler: an audit row is done when every entry's key has its row. */
export const auditEffects: EffectChecks = {
  [QUEUES.audit]: (row) => `CASE
    WHEN jsonb_typeof(${row}.payload->'entries') = 'array' THEN NOT EXISTS (
      SELECT 1 FROM jsonb_array_elements(${row}.payload->'entries') e
      WHERE jsonb_typeof(e->'key') = 'string'
        AND NOT EXISTS (SELECT 1 FROM audit_logs a WHERE a.job_key = e->>'key'))
    ELSE EXISTS (SELECT 1 FROM audit_logs a WHERE a.job_key = 'outbox-' || ${row}.id) END`,
}
