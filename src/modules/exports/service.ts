import { config } from '../../config'
import { db, sql } from '../../db/client'
import { exports } from '../../db/schema'
import { badRequest, conflict, notFound } from '../../lib/errors'
import { JOB_NAMES, QUEUES } from '../../outbox/definitions'
import { enqueue, outboxWritten } from '../../outbox/enqueue'
import type { CreateExportBody, Export, ExportStatus } from './model'

// Exports are asked for here and built by the worker (jobs.ts), which stores the file in
// export_chunks: any API replica serves any export, streaming it a chunk at a time.

type ExportRow = {
  id: number
  type: string
  status: ExportStatus
  row_count: number
  byte_size: string
  created_at: string
  finished_at: string | null
  error: string | null
}

/** The filters as stored: instants normalised to UTC, only those given. */
function filtersOf(body: CreateExportBody) {
  const instant = (name: 'from' | 'to') => {
    const value = body[name]
    if (value === undefined) return undefined
    const time = Date.parse(value)
    if (Number.isNaN(time)) throw badRequest(`Invalid body: ${name} is not a valid date and time`)
    return new Date(time).toISOString()
  }
  const from = instant('from')
  const to = instant('to')
  if (from && to && from > to) throw badRequest('Invalid body: from is after to')
  return { ...(from && { from }), ...(to && { to }), ...(body.status && { status: body.status }) }
}

/** Queues an export (its row and its job in one transaction); the worker builds it. */
export async function createExport(actorId: number, body: CreateExportBody) {
  const filters = filtersOf(body)
  const created = await db.transaction(async (tx) => {
    const [row] = await tx
      .insert(exports)
      .values({
        type: body.type,
        filters,
        requestedBy: actorId,
        expiresAt: new Date(Date.now() + config.EXPORT_TTL_HOURS * 3_600_000),
      })
      .returning()
    await enqueue(tx, [{ queue: QUEUES.exports, name: JOB_NAMES.exportBuild, payload: { exportId: row!.id } }])
    return row!
  })
  outboxWritten()
  return { id: created.id, type: created.type, status: created.status, created_at: created.createdAt.toISOString() }
}

/** An export that has not expired, or 404. */
async function findExport(id: number) {
  const [row] = await sql<ExportRow[]>`
    SELECT id, type, status, row_count, byte_size, iso_time(created_at) AS created_at,
      iso_time(finished_at) AS finished_at, error
    FROM exports WHERE id = ${id} AND expires_at > now()`
  if (!row) throw notFound(`Export ${id} not found`)
  return row
}

export async function getExport(id: number): Promise<Export> {
  const { byte_size: _, ...row } = await findExport(id)
  return { ...row, download_url: row.status === 'done' ? `/api/admin/exports/${id}/download` : null }
}

/**
 * The file, streamed a stored chunk at a time (memory stays one chunk, whatever the file's size);
 * 409 until it is done.
 */
export async function downloadExport(id: number) {
  const row = await findExport(id)
  if (row.status !== 'done') throw conflict(`Export ${id} is ${row.status}: it can be downloaded once done`)
  const encoder = new TextEncoder()
  let seq = 0
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const [chunk] = await sql<{ data: string }[]>`
        SELECT data FROM export_chunks WHERE export_id = ${id} AND seq = ${seq++}`
      if (chunk) controller.enqueue(encoder.encode(chunk.data))
      else controller.close()
    },
  })
  return new Response(body, {
    headers: {
      'content-type': 'text/csv; charset=utf-8',
      'content-disposition': `attachment; filename="${row.type}-export-${id}.csv"`,
      'content-length': row.byte_size,
      'cache-control': 'private, no-store',
    },
  })
}

/** Exports past their time, with their files; returns how many. */
export async function deleteExpiredExports(): Promise<number> {
  const deleted = await sql`DELETE FROM exports WHERE expires_at < now()`
  return deleted.count
}
