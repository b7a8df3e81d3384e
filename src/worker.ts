import { config } from './config'
import { sql } from './db/client'
import { logger } from './lib/logger'
import { createMailer, type Mailer } from './modules/notifications/service'
import { warnIfMetricsPublic } from './lib/metrics-access'
import { startTracing, stopTracing } from './lib/tracing'
import { serveWorkerMetrics } from './lib/worker-metrics'
import { auditEffects, auditJobs } from './modules/audit/jobs'
import { authHousekeeping } from './modules/auth/jobs'
import { exportEffects, exportHousekeeping, exportJobs } from './modules/exports/jobs'
import { orderEffects, orderHousekeeping, orderJobs } from './modules/orders/jobs'
import { productHousekeeping } from './modules/products/jobs'
import { returnEffects, returnJobs } from './modules/returns/jobs'
import { webhookEffects, webhookHousekeeping, webhookJobs } from './modules/webhooks/jobs'
import { runHousekeeping, startWorkers as startQueueWorkers, type WorkerOptions } from './outbox/workers'

// The worker process: the features' background work, composed, as src/app.ts composes routes.

const housekeepingTasks = {
  ...orderHousekeeping,
  ...exportHousekeeping,
  ...authHousekeeping,
  ...productHousekeeping,
  ...webhookHousekeeping,
}

/** How the reconciler tells that each queue's work is done, from the features that own them. */
export const effects = { ...auditEffects, ...orderEffects, ...returnEffects, ...exportEffects, ...webhookEffects }

/** Every feature's housekeeping, once (the scheduler runs it every 10 minutes). */
export const housekeeping = () => runHousekeeping(housekeepingTasks)

/** Starts a BullMQ worker for every queue the features consume; `close()` drains them. */
export const startWorkers = (
  options: { mailer: Mailer } & Omit<WorkerOptions, 'handlers' | 'housekeeping' | 'effects'>,
) =>
  startQueueWorkers({
    ...options,
    handlers: [...auditJobs, ...orderJobs(options.mailer), ...returnJobs(options.mailer), ...exportJobs, ...webhookJobs],
    housekeeping: housekeepingTasks,
    effects,
  })

if (import.meta.main) await main()

async function main() {
  startTracing('order-api-worker')
  const mailer = createMailer()
  const running = startWorkers({ mailer })
  // A second worker on the same machine finds the port taken: it works on without /metrics.
  const metricsServer = (() => {
    try {
      return serveWorkerMetrics(config.WORKER_METRICS_PORT)
    } catch (error) {
      logger.warn(
        { err: error, port: config.WORKER_METRICS_PORT },
        'worker metrics port unavailable; running without /metrics',
      )
      return undefined
    }
  })()
  warnIfMetricsPublic()
  logger.info(
    {
      queues: running.workers.map((worker) => worker.name),
      concurrency: config.WORKER_CONCURRENCY,
      prefix: config.QUEUE_PREFIX,
      mailer: mailer.transport,
      metricsPort: metricsServer?.port,
    },
    'worker started',
  )

  let stopping = false
  async function shutdown(signal: string) {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'worker stopping: finishing active jobs')
    await running.close()
    await metricsServer?.stop()
    await sql.end({ timeout: 5 })
    await stopTracing()
    logger.info('worker stopped')
    process.exit(0)
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
}
