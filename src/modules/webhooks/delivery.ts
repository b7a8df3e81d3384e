import { UnrecoverableError } from 'bullmq'
import { Webhook as Signer } from 'standardwebhooks'
import { config } from '../../config'
import { sql } from '../../db/client'
import { webhookAttempts } from './metrics'
import { logger } from '../../lib/logger'
import { pinnedRequest, resolveTarget } from './public-address'
import { clientSpan } from '../../lib/tracing'

/**
 * Attempts to one endpoint at once, per worker process: at most half the webhook slots (and at
 * most 4), so a slow or dead endpoint never takes them all.
 */
export const endpointConcurrency = (workerConcurrency: number) =>
  Math.max(1, Math.min(4, Math.floor(workerConcurrency / 2)))
/** The longest Retry-After honoured. */
const MAX_RETRY_AFTER_MS = 60 * 60_000
const MAX_ERROR_LENGTH = 500

/** A failed attempt to try again after `delayMs` (the worker's backoff strategy reads it). */
export class RetryLater extends Error {
  constructor(
    message: string,
    readonly delayMs: number,
  ) {
    super(message)
    this.name = 'RetryLater'
  }
}

/** Exponential from WEBHOOK_BACKOFF_MS (×2 per attempt), plus up to 25 % jitter so retries spread out. */
export const backoffMs = (failedAttempts: number) =>
  Math.round(config.WEBHOOK_BACKOFF_MS * 2 ** (failedAttempts - 1) * (1 + Math.random() * 0.25))

/** Retry-After as seconds or an HTTP date, in ms from now, capped. */
function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined
  const ms = /^\d+$/.test(header.trim()) ? Number(header) * 1000 : Date.parse(header) - Date.now()
  return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS) : undefined
}

type Target = {
  endpoint_id: number
  url: string
  enabled: boolean
  secrets: string[]
  status: string
  type: string
  data: unknown
  occurred_at: string
}

const inFlight = new Map<number, number>()

/** Result of one run: done (sent, or nothing to do), or the endpoint is busy and the job should wait. */
export type DeliveryRun = 'done' | 'busy'

/**
 * One attempt of one delivery: sign, POST, record. A 2xx is success; 410 disables the endpoint;
 * anything else (another status, a timeout, a refused or private target) is retried through
 * BullMQ (RetryLater), and on the last attempt the delivery is failed, counting towards the
 * endpoint's WEBHOOK_DISABLE_AFTER.
 */
export async function deliverWebhook(
  deliveryId: number,
  attempt: { number: number; last: boolean },
  perEndpoint: number,
): Promise<DeliveryRun> {
  const [target] = await sql<Target[]>`
    SELECT d.endpoint_id, d.status, e.url, e.enabled,
      array_remove(ARRAY[e.secret, CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret END], NULL) AS secrets,
      ev.type, ev.payload AS data, iso_time(ev.created_at) AS occurred_at
    FROM webhook_deliveries d
    JOIN webhook_endpoints e ON e.id = d.endpoint_id
    JOIN events ev ON ev.id = d.event_id
    WHERE d.id = ${deliveryId}`
  // Deleted with its endpoint, or already delivered (a job run twice): nothing to do.
  if (!target || target.status === 'succeeded') return 'done'
  if (!target.enabled) {
    await record(deliveryId, target.endpoint_id, { outcome: 'skipped', error: 'The endpoint is disabled' })
    return 'done'
  }
  const running = inFlight.get(target.endpoint_id) ?? 0
  if (running >= perEndpoint) return 'busy'
  inFlight.set(target.endpoint_id, running + 1)
  try {
    await attemptOnce(deliveryId, target, attempt)
  } finally {
    const left = (inFlight.get(target.endpoint_id) ?? 1) - 1
    if (left > 0) inFlight.set(target.endpoint_id, left)
    else inFlight.delete(target.endpoint_id)
  }
  return 'done'
}

async function attemptOnce(deliveryId: number, target: Target, attempt: { number: number; last: boolean }) {
  const started = performance.now()
  const result = await send(deliveryId, target)
  const ms = Math.round(performance.now() - started)
  const log = { deliveryId, endpointId: target.endpoint_id, event: target.type, attempt: attempt.number, ms }

  const outcome = outcomeOf(result.statusCode, attempt.last)
  const succeeded = outcome === 'succeeded'
  const error = succeeded
    ? undefined
    : (result.error ?? `The endpoint answered ${result.statusCode}`).slice(0, MAX_ERROR_LENGTH)
  const delayMs = outcome === 'retrying' ? (result.retryAfterMs ?? backoffMs(attempt.number)) : undefined
  await record(deliveryId, target.endpoint_id, { outcome, statusCode: result.statusCode, error, delayMs })
  logger[succeeded ? 'info' : 'warn'](
    { ...log, statusCode: result.statusCode, error, outcome, retryInMs: delayMs },
    'webhook attempt',
  )
  // A 410 (the endpoint is now disabled) and the last attempt fail for good; the rest retry.
  if (outcome === 'retrying') throw new RetryLater(error!, delayMs!)
  if (error !== undefined) throw new UnrecoverableError(error)
}

/** 2xx succeeds; 410 means gone (the endpoint is disabled); anything else retries until the last attempt. */
function outcomeOf(statusCode: number | undefined, lastAttempt: boolean): Outcome {
  if (statusCode !== undefined && statusCode >= 200 && statusCode < 300) return 'succeeded'
  if (statusCode === 410) return 'gone'
  return lastAttempt ? 'failed' : 'retrying'
}

type SendResult = { statusCode?: number; error?: string; retryAfterMs?: number }

async function send(deliveryId: number, target: Target): Promise<SendResult> {
  // Resolved and checked on every attempt (what a name resolves to can change after the endpoint
  // was saved), and the request goes to the address that was checked, never to a new lookup.
  const url = new URL(target.url)
  const resolved = await resolveTarget(url, config.WEBHOOK_ALLOW_PRIVATE_NETWORKS)
  if ('refused' in resolved) return { error: `Refused: ${resolved.refused}` }
  const pinned = pinnedRequest(url, resolved.address)
  const body = JSON.stringify({ type: target.type, timestamp: target.occurred_at, data: target.data })
  const messageId = `msg_${deliveryId}`
  const now = new Date()
  const attributes = {
    'http.request.method': 'POST',
    'server.address': url.hostname,
    'webhook.delivery_id': deliveryId,
  }
  return clientSpan('webhook POST', attributes, async (traceHeaders, span) => {
    try {
      const response = await fetch(pinned.url, {
        method: 'POST',
        tls: pinned.tls,
        headers: {
          ...traceHeaders,
          host: pinned.host,
          'content-type': 'application/json',
          'user-agent': 'order-api-webhooks/1',
          'webhook-id': messageId,
          'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
          'webhook-signature': target.secrets.map((secret) => new Signer(secret).sign(messageId, now, body)).join(' '),
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(config.WEBHOOK_TIMEOUT_MS),
      })
      span?.setAttribute('http.response.status_code', response.status)
      await response.body?.cancel().catch(() => {})
      const retryAfter =
        response.status === 429 || response.status === 503
          ? retryAfterMs(response.headers.get('retry-after'))
          : undefined
      return { statusCode: response.status, retryAfterMs: retryAfter }
    } catch (error) {
      span?.setAttribute('error.type', (error as Error).name)
      const name = (error as Error).name
      if (name === 'TimeoutError' || name === 'AbortError')
        return { error: `No answer within ${config.WEBHOOK_TIMEOUT_MS} ms` }
      return { error: `Could not connect: ${(error as Error).message}` }
    }
  })
}

type Outcome = 'succeeded' | 'retrying' | 'failed' | 'gone' | 'skipped'

/** Writes an attempt's outcome to the delivery and, where it counts, to its endpoint. */
async function record(
  deliveryId: number,
  endpointId: number,
  result: { outcome: Outcome; statusCode?: number; error?: string; delayMs?: number },
) {
  webhookAttempts.inc({ outcome: result.outcome })
  const status = result.outcome === 'succeeded' ? 'succeeded' : result.outcome === 'retrying' ? 'pending' : 'failed'
  const attempted = result.outcome === 'skipped' ? 0 : 1
  await sql`
    WITH delivery AS (
      UPDATE webhook_deliveries
      SET status = ${status}, attempts = attempts + ${attempted},
        last_status_code = CASE WHEN ${attempted} = 1 THEN ${result.statusCode ?? null}::int ELSE last_status_code END,
        last_error = ${result.error ?? null},
        next_attempt_at = ${result.delayMs === undefined ? null : sql`now() + ${result.delayMs} * interval '1 millisecond'`},
        updated_at = now()
      WHERE id = ${deliveryId}
    )
    UPDATE webhook_endpoints SET
      failed_in_a_row = CASE ${result.outcome} WHEN 'succeeded' THEN 0 WHEN 'failed' THEN failed_in_a_row + 1 ELSE failed_in_a_row END,
      enabled = enabled AND NOT (
        ${result.outcome} = 'gone' OR (${result.outcome} = 'failed' AND failed_in_a_row + 1 >= ${config.WEBHOOK_DISABLE_AFTER})),
      disabled_reason = CASE
        WHEN NOT enabled THEN disabled_reason
        WHEN ${result.outcome} = 'gone' THEN 'The endpoint answered 410 Gone'
        WHEN ${result.outcome} = 'failed' AND failed_in_a_row + 1 >= ${config.WEBHOOK_DISABLE_AFTER}
          THEN ${`The last ${config.WEBHOOK_DISABLE_AFTER} deliveries failed`}
        ELSE disabled_reason END,
      updated_at = CASE WHEN ${result.outcome} IN ('gone', 'failed') THEN now() ELSE updated_at END
    WHERE id = ${endpointId} AND ${result.outcome} IN ('succeeded', 'failed', 'gone')
      -- Success changes the endpoint only after failures: most deliveries then take no lock on it.
      AND NOT (${result.outcome} = 'succeeded' AND failed_in_a_row = 0)`
}
