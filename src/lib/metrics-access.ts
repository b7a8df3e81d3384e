import { timingSafeEqual } from 'node:crypto'
import { config } from '../config'
import { logger } from './logger'

const expected = config.METRICS_TOKEN ? Buffer.from(`Bearer ${config.METRICS_TOKEN}`) : undefined

/**
 * Whether a scrape may read /metrics (API and worker alike): always without METRICS_TOKEN,
 * else only with `Authorization: Bearer <METRICS_TOKEN>`. Per-route traffic is for Prometheus,
 * not for anyone who finds the path.
 */
export function mayReadMetrics(authorization: string | null) {
  if (!expected) return true
  const given = Buffer.from(authorization ?? '')
  return given.length === expected.length && timingSafeEqual(given, expected)
}

/** The refusal, in the API's error shape. */
export const metricsRefused = () =>
  Response.json(
    { error: 'Authentication required: Authorization: Bearer <METRICS_TOKEN>' },
    { status: 401, headers: { 'www-authenticate': 'Bearer realm="metrics"' } },
  )

/** Said at start: in production, /metrics without a token shows per-route traffic to anyone. */
export function warnIfMetricsPublic() {
  if (config.NODE_ENV === 'production' && !expected)
    logger.warn('METRICS_TOKEN is not set: /metrics answers anyone who can reach it')
}
