import { randomBytes } from 'node:crypto'
import { and, count, desc, eq, sql } from 'drizzle-orm'
import { config } from '../../config'
import { db } from '../../db/client'
import { events, webhookDeliveries, webhookEndpoints } from '../../db/schema'
import { JOB_NAMES, jobIdForDelivery, type OutboxJob, QUEUES } from '../../outbox/definitions'
import { enqueue, outboxWritten } from '../../outbox/enqueue'
import { recordEvent, TEST_EVENT } from '../../outbox/events'
import { queues } from '../../outbox/queues'
import { badRequest, conflict, HttpError, notFound } from '../../lib/errors'
import { readPage } from '../../lib/model'
import { resolveTarget } from './public-address'
import type { CreateWebhookBody, UpdateWebhookBody, Webhook } from './model'

type EndpointRow = typeof webhookEndpoints.$inferSelect
type DeliveryRow = typeof webhookDeliveries.$inferSelect

/** A rotated-out secret keeps signing (beside the new one) this long, so receivers can switch over. */
const PREVIOUS_SECRET_HOURS = 24

// Standard Webhooks secrets: `whsec_` and the base64 of the key (here 32 random bytes).
const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`

const toWebhook = (row: EndpointRow): Webhook => ({
  id: row.id,
  url: row.url,
  events: row.events,
  description: row.description,
  enabled: row.enabled,
  disabled_reason: row.disabledReason,
  created_at: row.createdAt.toISOString(),
  updated_at: row.updatedAt.toISOString(),
})

const toDelivery = (row: DeliveryRow & { eventType: string }) => ({
  id: row.id,
  event_id: row.eventId,
  event_type: row.eventType,
  status: row.status,
  attempts: row.attempts,
  last_status_code: row.lastStatusCode,
  last_error: row.lastError,
  next_attempt_at: row.nextAttemptAt?.toISOString() ?? null,
  created_at: row.createdAt.toISOString(),
  updated_at: row.updatedAt.toISOString(),
})

const webhookNotFound = (id: number) => notFound(`Webhook ${id} not found`)

/** An absolute http(s) URL whose host is public (unless WEBHOOK_ALLOW_PRIVATE_NETWORKS). */
async function checkedUrl(text: string): Promise<string> {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw badRequest('url must be an absolute http(s) URL')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw badRequest('url must be an absolute http(s) URL')
  if (url.username || url.password) throw badRequest('url must not carry credentials')
  if (!config.WEBHOOK_ALLOW_PRIVATE_NETWORKS) {
    // A host that does not resolve yet is accepted: every delivery checks again before it connects.
    const target = await resolveTarget(url, false)
    if ('refused' in target && !target.unresolved)
      throw badRequest(`url must point to a public address: ${target.refused}`)
  }
  return text
}

export async function createWebhook(body: CreateWebhookBody) {
  const url = await checkedUrl(body.url)
  const secret = newSecret()
  const [row] = await db
    .insert(webhookEndpoints)
    .values({ url, events: body.events, description: body.description ?? null, secret })
    .returning()
  return { ...toWebhook(row!), secret }
}

export async function listWebhooks() {
  const rows = await db.select().from(webhookEndpoints).orderBy(webhookEndpoints.id)
  return { data: rows.map(toWebhook) }
}

async function endpoint(id: number): Promise<EndpointRow> {
  const [row] = await db.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, id))
  if (!row) throw webhookNotFound(id)
  return row
}

/** The endpoint, for sending to it now: 404 when unknown, 409 while disabled. */
async function enabledEndpoint(id: number): Promise<EndpointRow> {
  const row = await endpoint(id)
  if (!row.enabled) throw conflict(`Webhook ${id} is disabled; enable it first`)
  return row
}

export const getWebhook = async (id: number) => toWebhook(await endpoint(id))

export async function updateWebhook(id: number, body: UpdateWebhookBody) {
  if (Object.values(body).every((value) => value === undefined))
    throw badRequest('Provide at least one of: url, events, description, enabled')
  const url = body.url === undefined ? undefined : await checkedUrl(body.url)
  const [row] = await db
    .update(webhookEndpoints)
    .set({
      url,
      events: body.events,
      description: body.description,
      enabled: body.enabled,
      // Enabled again by an admin: a fresh start.
      ...(body.enabled ? { failedInARow: 0, disabledReason: null } : {}),
      updatedAt: sql`now()`,
    })
    .where(eq(webhookEndpoints.id, id))
    .returning()
  if (!row) throw webhookNotFound(id)
  return toWebhook(row)
}

export async function deleteWebhook(id: number) {
  const deleted = await db
    .delete(webhookEndpoints)
    .where(eq(webhookEndpoints.id, id))
    .returning({ id: webhookEndpoints.id })
  if (!deleted.length) throw webhookNotFound(id)
}

/** A new secret; the old one goes on signing beside it for PREVIOUS_SECRET_HOURS. */
export async function rotateSecret(id: number) {
  const secret = newSecret()
  const [row] = await db
    .update(webhookEndpoints)
    .set({
      previousSecret: sql`${webhookEndpoints.secret}`,
      previousSecretExpiresAt: sql`now() + make_interval(hours => ${PREVIOUS_SECRET_HOURS})`,
      secret,
      updatedAt: sql`now()`,
    })
    .where(eq(webhookEndpoints.id, id))
    .returning({ id: webhookEndpoints.id })
  if (!row) throw webhookNotFound(id)
  return { secret }
}

const deliveryJob = (deliveryId: number): OutboxJob => ({
  queue: QUEUES.webhooks,
  name: JOB_NAMES.webhookDelivery,
  payload: { deliveryId },
})

/** A `webhook.test` event for this endpoint alone (the fan-out skips test events). */
export async function sendTestEvent(id: number) {
  await enabledEndpoint(id)
  const deliveryId = await db.transaction(async (tx) => {
    const eventId = await recordEvent(tx, TEST_EVENT, { webhook_id: id, message: 'A test event from the Order API' })
    const [delivery] = await tx
      .insert(webhookDeliveries)
      .values({ endpointId: id, eventId })
      .returning({ id: webhookDeliveries.id })
    await enqueue(tx, [deliveryJob(delivery!.id)])
    return delivery!.id
  })
  outboxWritten()
  return { delivery_id: deliveryId }
}

export async function listDeliveries(
  id: number,
  query: { page: number; limit: number; offset: number; status?: DeliveryRow['status'] },
) {
  await endpoint(id)
  const where = and(
    eq(webhookDeliveries.endpointId, id),
    query.status ? eq(webhookDeliveries.status, query.status) : undefined,
  )
  return readPage(
    db
      .select({ delivery: webhookDeliveries, eventType: events.type })
      .from(webhookDeliveries)
      .innerJoin(events, eq(events.id, webhookDeliveries.eventId))
      .where(where)
      .orderBy(desc(webhookDeliveries.id))
      .limit(query.limit)
      .offset(query.offset)
      .then((rows) => rows.map((row) => toDelivery({ ...row.delivery, eventType: row.eventType }))),
    db.select({ total: count() }).from(webhookDeliveries).where(where),
    query,
  )
}

/**
 * Attempts a delivery again, under the same webhook-id. A delivery has one job at a time (named
 * after it): one waiting for its next attempt is brought forward; a spent one is removed, so that
 * the outbox row written here starts a fresh run of the retry schedule.
 */
export async function retryDelivery(id: number, deliveryId: number) {
  await enabledEndpoint(id)
  const [exists] = await db
    .select({ id: webhookDeliveries.id })
    .from(webhookDeliveries)
    .where(and(eq(webhookDeliveries.id, deliveryId), eq(webhookDeliveries.endpointId, id)))
  if (!exists) throw notFound(`Delivery ${deliveryId} of webhook ${id} not found`)
  try {
    const job = await queues()[QUEUES.webhooks].getJob(jobIdForDelivery(deliveryId))
    const state = await job?.getState()
    if (state === 'delayed') await job!.promote().catch(() => {}) // it may have started meanwhile
    if (state === 'completed' || state === 'failed') await job!.remove()
  } catch {
    throw new HttpError(503, 'The job queue is unavailable, try again later')
  }
  const found = await db.transaction(async (tx) => {
    const [row] = await tx
      .update(webhookDeliveries)
      .set({ status: 'pending', nextAttemptAt: sql`now()`, updatedAt: sql`now()` })
      .where(and(eq(webhookDeliveries.id, deliveryId), eq(webhookDeliveries.endpointId, id)))
      .returning({ id: webhookDeliveries.id })
    if (row) await enqueue(tx, [deliveryJob(row.id)])
    return row
  })
  if (!found) throw notFound(`Delivery ${deliveryId} of webhook ${id} not found`)
  outboxWritten()
  return { delivery_id: deliveryId }
}

/** Events (and their deliveries) older than 30 days go, unless a delivery is still pending. */
export async function deleteOldEvents(): Promise<number> {
  const rows = await db.execute<{ id: number }>(sql`
    DELETE FROM events e
    WHERE e.created_at < now() - interval '30 days'
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending')
    RETURNING e.id`)
  return rows.length
}
