import { config } from './config'
import { sql } from './db/client'
import { createMailer } from './lib/mailer'
import { serveWorkerMetrics } from './lib/worker-metrics'
import { startWorkers } from './jobs/worker'
import { logger } from './lib/logger'

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
  logger.info('worker stopped')
  process.exit(0)
}
process.on('SIGTERM', () => void shutdown('SIGTERM'))
process.on('SIGINT', () => void shutdown('SIGINT'))
