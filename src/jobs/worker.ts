import { Worker, type Job } from 'bullmq'
import { config } from '../config'
import { logger } from '../lib/logger'
import { QUEUES, type AuditPayload, type OrderConfirmationPayload } from './definitions'
import { confirmOrder, writeAudit } from './handlers'
import { jobDuration, jobsProcessed } from './metrics'
import type { Mailer } from './mailer'
import { createWorkerConnection } from '../lib/redis'

export type WorkerOptions = {
  mailer: Mailer
  redisUrl?: string
  prefix?: string
  concurrency?: number
  lockDurationMs?: number
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
      (job) => confirmOrder(job.data, options.mailer),
      common,
    ),
    new Worker<AuditPayload>(QUEUES.audit, (job) => writeAudit(job.data, job.id!), common),
  ]

  const context = (job: Job<OrderConfirmationPayload | AuditPayload>) => ({
    queue: job.queueName,
    jobId: job.id,
    attempt: job.attemptsMade + 1,
    ...('orderId' in job.data
      ? { orderId: job.data.orderId }
      : { entity: job.data.entity, entityId: job.data.entityId }),
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
      const willRetry = job.attemptsMade < (job.opts.attempts ?? 1)
      logger.warn({ ...context(job), err: error, willRetry }, 'job failed')
    })
    worker.on('error', (error) => logger.error({ err: error }, 'worker error'))
  }

  return {
    workers,
    async close() {
      await Promise.all(workers.map((worker) => worker.close()))
      await connection.quit().catch(() => connection.disconnect())
    },
  }
}
