import type { Static, TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { type Job, Queue, UnrecoverableError, Worker, type WorkerOptions as BullWorkerOptions } from 'bullmq'
import { config } from '../config'
import { logger } from '../lib/logger'
import { createWorkerConnection, logRedisErrors, warnUnlessNoEviction } from '../lib/redis'
import { withTimeout } from '../lib/timeout'
import { bullTelemetry } from '../lib/tracing'
import { jobDuration, jobsProcessed } from '../lib/worker-metrics'
import {
  HOUSEKEEPING_EVERY_MS,
  JOB_NAMES,
  jobOptionsFor,
  QUEUE_NAMES,
  QUEUES,
  type QueueName,
  SCHEDULER_IDS,
} from './definitions'
import { deleteRelayedOutboxRows } from './enqueue'
import type { Queues } from './queues'
import { type EffectChecks, reconcile } from './reconcile'

// The worker's plumbing: one BullMQ worker per queue, running the handlers the features give
// it, plus the cluster-wide schedules (housekeeping and the reconciler). It knows no feature:
// src/worker.ts composes the features' handlers and housekeeping, as src/app.ts composes routes.

/** What a processor gets besides its job: the worker's producers (for follow-up jobs) and slots. */
export type JobContext = { token: string | undefined; producers: Queues; concurrency: number }

/** A feature's consumer of one queue. */
export type QueueHandler = {
  queue: QueueName
  process: (job: Job, context: JobContext) => Promise<unknown>
  /** BullMQ settings, e.g. a backoff strategy of the feature's own. */
  settings?: BullWorkerOptions['settings']
}

/** Deletions that keep tables from growing, by name; each returns how many rows went. */
export type HousekeepingTasks = Record<string, () => Promise<number>>

/** Runs every task (and the outbox's own), logs what went, returns the counts by name. */
export async function runHousekeeping(tasks: HousekeepingTasks) {
  const all: HousekeepingTasks = { outboxRows: deleteRelayedOutboxRows, ...tasks }
  const names = Object.keys(all)
  const counts = await Promise.all(names.map((name) => all[name]!()))
  const deleted = Object.fromEntries(names.map((name, i) => [name, counts[i]!]))
  if (counts.some(Boolean)) logger.info(deleted, 'housekeeping done')
  return deleted
}

/**
 * A job's payload, checked against its schema (or, where there is one, the older single shape
 * of jobs queued before an upgrade): a malformed one fails for good, never retried, and says why.
 */
export function checked<S extends TSchema, L extends TSchema = S>(
  job: Job,
  schema: S,
  legacy?: L,
): Static<S> | Static<L> {
  if (Value.Check(schema, job.data) || (legacy && Value.Check(legacy, job.data))) return job.data
  const problem = Value.Errors(schema, job.data).First()
  throw new UnrecoverableError(
    `Invalid ${job.queueName} payload: ${problem?.path || '/'} ${problem?.message ?? ''}`.trim(),
  )
}

/** Whether this run of a job is its last attempt (a failure now is final). */
export const isLastAttempt = (job: Job) => job.attemptsMade + 1 >= (job.opts.attempts ?? 1)

export type WorkerOptions = {
  handlers: QueueHandler[]
  housekeeping: HousekeepingTasks
  /** How the reconciler tells, per queue, that a row's effect is done (the modules' jobs.ts). */
  effects: EffectChecks
  redisUrl?: string
  prefix?: string
  concurrency?: number
  lockDurationMs?: number
  reconcileAfterSeconds?: number
  reconcileIntervalSeconds?: number
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
    ...bullTelemetry(),
  }

  // Producers on the worker's side: follow-up jobs of the handlers, the schedules, and the
  // reconciler's hand-overs.
  const producers = Object.fromEntries(
    QUEUE_NAMES.map((name) => [
      name,
      new Queue(name, {
        connection,
        prefix: common.prefix,
        defaultJobOptions: jobOptionsFor(name),
        ...bullTelemetry(),
      }),
    ]),
  ) as Queues
  const housekeepingQueue = producers[QUEUES.housekeeping]
  const reconcileAfterSeconds = options.reconcileAfterSeconds ?? config.RECONCILE_AFTER_SECONDS
  const reconcileEveryMs = (options.reconcileIntervalSeconds ?? config.RECONCILE_INTERVAL_SECONDS) * 1000

  const workers = [
    ...options.handlers.map(
      (handler) =>
        new Worker(
          handler.queue,
          (job, token) => handler.process(job, { token, producers, concurrency: common.concurrency }),
          { ...common, ...(handler.settings ? { settings: handler.settings } : {}) },
        ),
    ),
    new Worker(
      QUEUES.housekeeping,
      (job) =>
        job.name === JOB_NAMES.reconcile
          ? reconcile(producers, reconcileAfterSeconds, options.effects)
          : runHousekeeping(options.housekeeping),
      { ...common, concurrency: 1 },
    ),
  ]
  // Upserted by every worker under one id each: one schedule for the whole cluster, shown in Bull
  // Board. Redis may lose them with the rest of its data: each worker looks every period and
  // registers again what is missing.
  const schedules = [
    { id: SCHEDULER_IDS.housekeeping, every: HOUSEKEEPING_EVERY_MS, name: JOB_NAMES.housekeeping },
    { id: SCHEDULER_IDS.reconcile, every: reconcileEveryMs, name: JOB_NAMES.reconcile },
  ]
  const schedule = (missingOnly: boolean) =>
    Promise.all(
      schedules.map(async ({ id, every, name }) => {
        if (missingOnly && (await housekeepingQueue.getJobScheduler(id))) return
        if (missingOnly) logger.warn({ scheduler: id }, 'job scheduler missing (Redis lost it): registering it again')
        await housekeepingQueue.upsertJobScheduler(id, { every }, { name })
      }),
    ).catch((error) => logger.warn({ err: error }, 'could not register the job schedulers'))
  const scheduled = schedule(false)
  const scheduleCheck = setInterval(() => void schedule(true), reconcileEveryMs)

  const context = (job: Job) => ({
    queue: job.queueName,
    jobId: job.id,
    attempt: job.attemptsMade + 1,
    ...(job.data && 'orderIds' in job.data ? { orderIds: job.data.orderIds } : {}),
    ...(job.data && 'entries' in job.data ? { entries: job.data.entries.length } : {}),
    ...(job.data && 'orderId' in job.data ? { orderId: job.data.orderId } : {}),
    ...(job.data && 'deliveryId' in job.data ? { deliveryId: job.data.deliveryId } : {}),
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
  void warnUnlessNoEviction(connection, 'worker')

  return {
    workers,
    async close() {
      // Workers closed while still starting send their start-up commands after the connection
      // is gone; let them (and the scheduling) finish first. Redis may be down: a moment, not forever.
      const started = Promise.all([...workers.map((worker) => worker.waitUntilReady()), scheduled])
      clearInterval(scheduleCheck)
      await withTimeout(started, 2_000, 'workers starting').catch(() => {})
      await Promise.all(workers.map((worker) => worker.close()))
      await Promise.all(Object.values(producers).map((open) => open.close()))
      await connection.quit().catch(() => connection.disconnect())
    },
  }
}
