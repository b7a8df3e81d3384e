import { Value } from '@sinclair/typebox/value'
import type { TSchema, Static } from '@sinclair/typebox'
import { DelayedError, Queue, UnrecoverableError, Worker, type Job } from 'bullmq'
import { config } from '../config'
import { logger } from '../lib/logger'
import { withTimeout } from '../lib/timeout'
import {
  AuditJob,
  AuditPayload,
  HOUSEKEEPING_EVERY_MS,
  JOB_NAMES,
  jobOptionsFor,
  OrderConfirmationJob,
  OrderConfirmationPayload,
  OrderNotificationPayload,
  QUEUE_NAMES,
  QUEUES,
  SCHEDULER_IDS,
  WEBHOOK_BACKOFF,
  WebhookDeliveryJob,
} from '../outbox/definitions'
import type { Queues } from '../outbox/queues'
import { reconcile } from '../outbox/reconcile'
import { confirmOrders, housekeeping, jobError, notifyOrder, writeAudits } from './handlers'
import { jobDuration, jobsProcessed } from '../lib/worker-metrics'
import type { Mailer } from '../lib/mailer'
import { createWorkerConnection, logRedisErrors, warnUnlessNoEviction } from '../lib/redis'
import { backoffMs, deliverWebhook, endpointConcurrency, RetryLater } from '../modules/webhooks/delivery'

export type WorkerOptions = {
  mailer: Mailer
  redisUrl?: string
  prefix?: string
  concurrency?: number
  lockDurationMs?: number
  reconcileAfterSeconds?: number
  reconcileIntervalSeconds?: number
}

/**
 * A job's payload, checked against its schema (or, where there is one, the older single shape
 * of jobs queued before an upgrade): a malformed one fails for good, never retried, and says why.
 */
function checked<S extends TSchema, L extends TSchema = S>(job: Job, schema: S, legacy?: L): Static<S> | Static<L> {
  if (Value.Check(schema, job.data) || (legacy && Value.Check(legacy, job.data))) return job.data
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

  // Producers on the worker's side: failed orders split off into jobs of their own, the
  // schedules, and the reconciler's hand-overs.
  const producers = Object.fromEntries(
    QUEUE_NAMES.map((name) => [
      name,
      new Queue(name, { connection, prefix: common.prefix, defaultJobOptions: jobOptionsFor(name) }),
    ]),
  ) as Queues
  const confirmationQueue = producers[QUEUES.orderConfirmation]
  const auditQueue = producers[QUEUES.audit]
  const housekeepingQueue = producers[QUEUES.housekeeping]
  const reconcileAfterSeconds = options.reconcileAfterSeconds ?? config.RECONCILE_AFTER_SECONDS
  const reconcileEveryMs = (options.reconcileIntervalSeconds ?? config.RECONCILE_INTERVAL_SECONDS) * 1000

  /**
   * A batch job whose orders partly failed: the failed ones go on as jobs of their own (retried,
   * and visible to operators, one order at a time) and the batch is done. A one-order job fails
   * as itself, so that BullMQ retries it.
   */
  async function confirmationBatch(job: Job) {
    const data = checked(job, OrderConfirmationJob, OrderConfirmationPayload)
    const orderIds = 'orderIds' in data ? data.orderIds : [data.orderId]
    const { failures } = await confirmOrders(orderIds, options.mailer)
    if (!failures.length) return
    if (orderIds.length === 1) throw jobError(failures[0]!)
    logger.warn({ jobId: job.id, orders: failures.map((f) => f.orderId) }, 'confirmations split off for retry')
    await confirmationQueue.addBulk(
      failures.map((failure) => ({
        name: JOB_NAMES.orderConfirmation,
        data: { orderIds: [failure.orderId] },
        opts: { jobId: `${job.id}-order-${failure.orderId}` },
      })),
    )
  }

  /** Audit entries in one statement; when it fails, each entry is retried as a job of its own. */
  async function auditBatch(job: Job) {
    const data = checked(job, AuditJob, AuditPayload)
    const entries = 'entries' in data ? data.entries : [{ ...data, key: job.id! }]
    try {
      await writeAudits(entries)
    } catch (error) {
      if (entries.length === 1) throw error
      logger.warn({ err: error, jobId: job.id }, 'audit entries split off for retry')
      await auditQueue.addBulk(
        entries.map((entry) => ({
          name: JOB_NAMES.audit,
          data: { entries: [entry] },
          opts: { jobId: `${job.id}-${entry.key}` },
        })),
      )
    }
  }

  /**
   * One attempt of a webhook delivery. An endpoint already at its concurrency in this process
   * puts the job back for a moment, freeing the slot for other endpoints' deliveries.
   */
  const perEndpoint = endpointConcurrency(common.concurrency)
  async function webhookDelivery(job: Job, token?: string) {
    const { deliveryId } = checked(job, WebhookDeliveryJob)
    const attempt = { number: job.attemptsMade + 1, last: job.attemptsMade + 1 >= (job.opts.attempts ?? 1) }
    if ((await deliverWebhook(deliveryId, attempt, perEndpoint)) === 'busy') {
      await job.moveToDelayed(Date.now() + 250 + Math.random() * 250, token)
      throw new DelayedError()
    }
  }

  const workers = [
    new Worker(QUEUES.orderConfirmation, confirmationBatch, common),
    new Worker(QUEUES.audit, auditBatch, common),
    new Worker(
      QUEUES.orderNotification,
      (job) => notifyOrder(checked(job, OrderNotificationPayload), options.mailer),
      common,
    ),
    new Worker(
      QUEUES.housekeeping,
      (job) => (job.name === JOB_NAMES.reconcile ? reconcile(producers, reconcileAfterSeconds) : housekeeping()),
      { ...common, concurrency: 1 },
    ),
    // Its own worker and slots: a slow or dead endpoint never holds up confirmations or audits.
    new Worker(QUEUES.webhooks, webhookDelivery, {
      ...common,
      settings: {
        backoffStrategy: (attemptsMade: number, type?: string, error?: Error) =>
          type === WEBHOOK_BACKOFF && error instanceof RetryLater ? error.delayMs : backoffMs(attemptsMade),
      },
    }),
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
