import { config } from './config'
import { sql } from './db/client'
import { createMailer } from './jobs/mailer'
import { startWorkers } from './jobs/worker'
import { logger } from './lib/logger'

const mailer = createMailer()
const running = startWorkers({ mailer })
logger.info(
  {
    queues: running.workers.map((worker) => worker.name),
    concurrency: config.WORKER_CONCURRENCY,
    prefix: config.QUEUE_PREFIX,
    mailer: mailer.transport,
  },
  'worker started',
)

let stopping = false
async function shutdown(signal: string) {
  if (stopping) return
  stopping = true
  logger.info({ signal }, 'worker stopping: finishing active jobs')
  await running.close()
  await sql.end({ timeout: 5 })
  logger.info('worker stopped')
  process.exit(0)
}
process.on('SIGTERM', () => void shutdown('SIGTERM'))
process.on('SIGINT', () => void shutdown('SIGINT'))
