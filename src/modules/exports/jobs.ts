import { randomUUID } from 'node:crypto'
import type { Fragment } from 'postgres'
import { config } from '../../config'
import { sql } from '../../db/client'
import { csvLine } from './csv'
import { logger } from '../../lib/logger'
import { ExportJob, QUEUES } from '../../outbox/definitions'
import { type EffectChecks, payloadInt } from '../../outbox/reconcile'
import { checked, type HousekeepingTasks, isLastAttempt, type QueueHandler } from '../../outbox/workers'
import { EXPORT_COLUMNS } from './model'
import { deleteExpiredExports } from './service'

// The worker builds exports: order lines read in keyset chunks (each a short statement, so no
// transaction stays open for the whole export and memory stays one chunk, however many orders
// there are), each chunk written as one row of export_chunks. The price of short statements: no
// snapshot spans the export, so an order that changes status during the build shows the status
// its chunk was read with (a snapshot would hold a transaction open, and with it the cleanup of
// every hot row, for the export's whole length).

/** Order lines per chunk: one read, one stored row. */
export const LINES_PER_CHUNK = 5_000

type Filters = { from?: string; to?: string; status?: string }
type Line = {
  order_id: number
  created_at: string
  status: string
  user_id: number
  email: string
  total_cents: string
  product_id: number
  name: string
  quantity: number
  unit_price_cents: number
  line_total_cents: string
  shipping_country: string | null
}

// `to` is inclusive at the API's precision (times are shown to the millisecond, stored to the
// microsecond): an order shown as created at `to` is in.
const conditions = ({ from, to, status }: Filters): Fragment => sql`
  ${from ? sql`AND o.created_at >= ${from}::timestamptz` : sql``}
  ${to ? sql`AND o.created_at < ${to}::timestamptz + interval '1 millisecond'` : sql``}
  ${status ? sql`AND o.status = ${status}::order_status` : sql``}`

/** The order lines after (orderId, productId), in that order. */
const linesAfter = (filters: Filters, orderId: number, productId: number) => sql<Line[]>`
  SELECT o.id AS order_id, iso_time(o.created_at) AS created_at, o.status, o.user_id, u.email, o.total_cents,
    i.product_id, i.name, i.quantity, i.unit_price_cents, i.line_total_cents,
    o.shipping_address->>'country' AS shipping_country
  FROM orders o JOIN order_items i ON i.order_id = o.id JOIN users u ON u.id = o.user_id
  WHERE o.id >= ${orderId} AND (o.id > ${orderId} OR i.product_id > ${productId}) ${conditions(filters)}
  ORDER BY o.id, i.product_id
  LIMIT ${LINES_PER_CHUNK}`

/**
 * Builds an export from the start. A run takes the export over (a new run id), so that a run it
 * replaced (a stalled job) can write nothing more; an export already done, failed or expired is
 * left alone. On the job's last attempt a failure marks the export failed, with the reason.
 */
export async function buildExport(exportId: number, lastAttempt = true) {
  const runId = randomUUID()
  const [started] = await sql<{ filters: Filters }[]>`
    WITH started AS (
      UPDATE exports SET status = 'running', run_id = ${runId}, started_at = now(), row_count = 0, byte_size = 0, error = NULL
      WHERE id = ${exportId} AND status IN ('queued', 'running') AND expires_at > now()
      RETURNING filters
    ),
    cleared AS (DELETE FROM export_chunks WHERE export_id = ${exportId} AND EXISTS (SELECT 1 FROM started))
    SELECT filters FROM started`
  if (!started) return { outcome: 'nothing to build' }
  const ours = sql`EXISTS (SELECT 1 FROM exports WHERE id = ${exportId} AND run_id = ${runId})`
  try {
    let rows = 0
    let bytes = 0
    let after = { orderId: 0, productId: 0 }
    for (let seq = 0; ; seq++) {
      const lines = await linesAfter(started.filters, after.orderId, after.productId)
      let text = seq === 0 ? csvLine(EXPORT_COLUMNS) : ''
      for (const line of lines)
        text += csvLine([
          line.order_id,
          line.created_at,
          line.status,
          line.user_id,
          line.email,
          line.total_cents,
          line.product_id,
          line.name,
          line.quantity,
          line.unit_price_cents,
          line.line_total_cents,
          line.shipping_country,
        ])
      rows += lines.length
      bytes += Buffer.byteLength(text)
      if (text) {
        const written = await sql`
          WITH chunk AS (
            INSERT INTO export_chunks (export_id, seq, data) SELECT ${exportId}, ${seq}, ${text} WHERE ${ours}
            RETURNING export_id
          )
          UPDATE exports SET row_count = ${rows} WHERE id IN (SELECT export_id FROM chunk)`
        if (!written.count) return { outcome: 'taken over by another run' }
      }
      const last = lines.at(-1)
      if (!last || lines.length < LINES_PER_CHUNK) break
      after = { orderId: last.order_id, productId: last.product_id }
    }
    await sql`
      UPDATE exports SET status = 'done', finished_at = now(), row_count = ${rows}, byte_size = ${bytes},
        expires_at = now() + make_interval(hours => ${config.EXPORT_TTL_HOURS})
      WHERE id = ${exportId} AND run_id = ${runId}`
    logger.info({ exportId, rows, bytes }, 'export built')
    return { outcome: 'done', rows, bytes }
  } catch (error) {
    if (lastAttempt)
      await sql`
        UPDATE exports SET status = 'failed', finished_at = now(), error = ${String((error as Error).message).slice(0, 500)}
        WHERE id = ${exportId} AND run_id = ${runId}`
    throw error
  }
}

export const exportJobs: QueueHandler[] = [
  { queue: QUEUES.exports, process: (job) => buildExport(checked(job, ExportJob).exportId, isLastAttempt(job)) },
]

/** Exports past EXPORT_TTL_HOURS go, with their files. */
export const exportHousekeeping: HousekeepingTasks = { exports: deleteExpiredExports }

/** For the reconciler: an export is done once built, failed or gone (expired). */
export const exportEffects: EffectChecks = {
  [QUEUES.exports]: (row) => `NOT EXISTS (
    SELECT 1 FROM exports e WHERE e.id = ${payloadInt(`${row}.payload->>'exportId'`)}
      AND e.status IN ('queued', 'running') AND e.expires_at > now())`,
}
