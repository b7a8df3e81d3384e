import { app } from './app'
import { config } from './config'
import { sql } from './db/client'
import { logger } from './lib/logger'

app.listen({ port: config.PORT, maxRequestBodySize: 100 * 1024 })

logger.info({ port: config.PORT }, `Order API listening: docs at http://localhost:${config.PORT}/swagger`)

let stopping = false
async function shutdown(signal: string) {
  if (stopping) return
  stopping = true
  logger.info({ signal }, 'shutting down')
  await app.stop()
  await sql.end({ timeout: 5 })
  process.exit(0)
}
process.on('SIGTERM', () => void shutdown('SIGTERM'))
process.on('SIGINT', () => void shutdown('SIGINT'))
