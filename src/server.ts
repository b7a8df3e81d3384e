import { app, startApp, stopApp } from './app'
import { config } from './config'
import { closeDatabase } from './db/client'
import { closeQueues, queues } from './outbox/queues'
import { OutboxRelay } from './outbox/relay'
import { logger } from './lib/logger'
import { warnIfMetricsPublic } from './lib/metrics-access'
import { closeRedis, redis, warnUnlessNoEviction, whenRedisReady } from './lib/redis'
import { SERVER_BODY_CAP_BYTES } from './lib/security'
import { stopTracing } from './lib/tracing'

// reusePort: several API processes can share the port on one machine (the kernel spreads connections).
app.listen({ port: config.PORT, maxRequestBodySize: SERVER_BODY_CAP_BYTES, reusePort: true })
const relay = new OutboxRelay(queues()).start()
startApp()
void whenRedisReady(10_000).then(() => warnUnlessNoEviction(redis(), 'api'))

warnIfMetricsPublic()
logger.info({ port: config.PORT }, `Order API listening: docs at http://localhost:${config.PORT}/swagger`)

const SHUTDOWN_GRACE_MS = 10_000
let stopping = false
async function shutdown(signal: string) {
  if (stopping) return
  stopping = true
  logger.info({ signal }, 'shutting down: no new connections, finishing requests in flight')
  // In-flight requests get a bounded time to finish; whatever is left after it is cut off.
  const finished = await Promise.race([app.stop().then(() => true), Bun.sleep(SHUTDOWN_GRACE_MS).then(() => false)])
  if (!finished) await app.stop(true)
  await relay.stop()
  await closeQueues()
  await stopApp()
  await closeRedis()
  await closeDatabase()
  await stopTracing()
  logger.info('stopped')
  process.exit(0)
}
process.on('SIGTERM', () => void shutdown('SIGTERM'))
process.on('SIGINT', () => void shutdown('SIGINT'))
