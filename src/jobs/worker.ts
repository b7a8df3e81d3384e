import { Value } from '@sinclair/typebox/value'
import type { TSchema, Static } from '@sinclair/typebox'
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq'
import { config } from '../config'
import { logger } from '../lib/logger'
import { withTimeout } from '../lib/timeout'
import { AuditPayload, HOUSEKEEPING_EVERY_MS, JOB_NAMES, OrderConfirmationPayload, QUEUES } from './definitions'
import { confirmOrder, housekeeping, writeAudit } from './handlers'
import { jobDuration, jobsProcessed } from './metrics'
import type { Mailer } from './mailer'
import { createWorkerConnection, logRedisErrors } from '../lib/redis'

export type WorkerOptions = {
  mailer: Mailer
  redisUrl?: string
  prefix?: string
  concurrency?: number
  lockDurationMs?: number
}

const HOUSEKEEPING_SCHEDULER_ID = 'housekeeping'

/** A job's payload, checked against its schema: a malformed one fails for good, never retried. */
function checked<S extends TSchema>(schema: S, job: Job): Static<S> {
  if (Value.Check(schema, job.data)) return job.data
  const problem = Value.Errors(schema, job.data).First()
  throw new UnrecoverableError(
    `Invalid ${job.queueName} payload: ${problem?.path || '/'} ${problem?.message ?? ''}`.trim(),
  )
}

/** Starts one BullMQ worker per queue; `close()` lets active jobs finish, then disconnects. */
export function startWorkers(options: WorkerOptions) {
  const connection = createWorkerConnection(options.redisUrl)
  const lockDuration = options.lockDurationMs ?? config.WORKER_LOCK_DURATION_MS
  const common = {
    connection,
    prefix: options.prefix ?? config.QUEUE_PREFIX,
    concurrency: options.concurrency ?? config.WORKER_CONCURRENCY,
    lockDuration,
    // A job whose worker died is noticed within one lock period and run again.
    stalledInterval: lockDuration,
  }

  const workers = [
    new Worker<OrderConfirmationPayload>(
      QUEUES.orderConfirmation,
      (job) => confirmOrder(checked(OrderConfirmationPayload, job), options.mailer),
      common,
    ),
    new Worker<AuditPayload>(QUEUES.audit, (job) => writeAudit(checked(AuditPayload, job), job.id!), common),
    new Worker(QUEUES.housekeeping, () => housekeeping(), { ...common, concurrency: 1 }),
  ]
  // Upserted by every worker under one id: one schedule for the whole cluster, shown in Bull Board.
  const housekeepingQueue = new Queue(QUEUES.housekeeping, { connection, prefix: common.prefix })
  const scheduled = housekeepingQueue
    .upsertJobScheduler(HOUSEKEEPING_SCHEDULER_ID, { every: HOUSEKEEPING_EVERY_MS }, { name: JOB_NAMES.housekeeping })
    .catch((error) => logger.warn({ err: error }, 'could not schedule housekeeping'))

  const context = (job: Job) => ({
    queue: job.queueName,
    jobId: job.id,
    attempt: job.attemptsMade + 1,
    ...(job.data && 'orderId' in job.data ? { orderId: job.data.orderId } : {}),
    ...(job.data && 'entity' in job.data ? { entity: job.data.entity, entityId: job.data.entityId } : {}),
  })
  const record = (job: Job, outcome: 'completed' | 'failed') => {
    jobsProcessed.inc({ queue: job.queueName, outcome })
    if (job.processedOn) jobDuration.observe({ queue: job.queueName, outcome }, (Date.now() - job.processedOn) / 1000)
  }
  for (const worker of workers) {
    worker.on('active', (job) => logger.info(context(job), 'job started'))
    worker.on('completed', (job) => {
      record(job, 'completed')
      logger.info({ ...context(job), ms: job.processedOn ? Date.now() - job.processedOn : undefined }, 'job finished')
    })
    worker.on('failed', (job, error) => {
      if (!job) return
      record(job, 'failed')
      const willRetry = !(error instanceof UnrecoverableError) && job.attemptsMade < (job.opts.attempts ?? 1)
      logger.warn({ ...context(job), err: error, willRetry }, 'job failed')
    })
    worker.on('error', (error) => logger.error({ err: error }, 'worker error'))
  }
  logRedisErrors(connection, 'worker connection')

  return {
    workers,
    async close() {
      // Workers closed while still starting send their start-up commands after the connection
      // is gone; let them (and the scheduling) finish first. Redis may be down: a moment, not forever.
      const started = Promise.all([...workers.map((worker) => worker.waitUntilReady()), scheduled])
      await withTimeout(started, 2_000, 'workers starting').catch(() => {})
      await Promise.all(workers.map((worker) => worker.close()))
      await housekeepingQueue.close()
      await connection.quit().catch(() => connection.disconnect())
    },
  }
}
