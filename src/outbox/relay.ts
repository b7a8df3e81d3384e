import type { TransactionSql } from 'postgres'
import { sql } from '../db/client'
import { logger } from '../lib/logger'
import { withTimeout } from '../lib/timeout'
import {
  type AuditJob,
  type AuditPayload,
  jobIdForDelivery,
  jobIdForOutboxRow,
  jobIdForOutboxRows,
  MAX_ROWS_PER_JOB,
  type OrderConfirmationJob,
  type OrderConfirmationPayload,
  QUEUES,
  type QueueName,
  type WebhookDeliveryJob,
} from './definitions'
import { onOutboxWritten } from './enqueue'
import type { Queues } from './queues'

export type OutboxRow = { id: string; queue: QueueName; name: string; payload: unknown }

/**
 * Confirmation and audit rows travel many to a job (up to MAX_ROWS_PER_JOB orders or entries,
 * named after the rows they carry), so the worker handles a pass's orders in a few round trips.
 * A row holds one order (a lone order, a cancellation, a product change) or a whole batch of
 * orders (see orders/batch.ts). Other rows go one to a job.
 */
export function toJobs(queue: QueueName, rows: OutboxRow[]) {
  const job = (chunk: OutboxRow[], data: unknown) => ({
    name: chunk[0]!.name,
    data,
    opts: { jobId: jobIdForOutboxRows(chunk.map((row) => row.id)) },
    rowIds: chunk.map((row) => row.id),
  })
  switch (queue) {
    case QUEUES.orderConfirmation:
      return chunked(rows, (row) => {
        const payload = row.payload as OrderConfirmationPayload | OrderConfirmationJob
        return 'orderIds' in payload ? payload.orderIds : [payload.orderId]
      }).map(({ rows: chunk, items }) => job(chunk, { orderIds: items }))
    case QUEUES.audit:
      return chunked(rows, (row) => {
        const payload = row.payload as AuditPayload | AuditJob
        return 'entries' in payload ? payload.entries : [{ ...payload, key: jobIdForOutboxRow(row.id) }]
      }).map(({ rows: chunk, items }) => job(chunk, { entries: items }))
    case QUEUES.webhooks:
      return rows.map((row) => {
        const payload = row.payload as WebhookDeliveryJob
        return { ...job([row], payload), opts: { jobId: jobIdForDelivery(payload.deliveryId) } }
      })
    default:
      return rows.map((row) => job([row], row.payload))
  }
}

/** How many orders or audit entries a job carries (1 for any other job). */
const itemCount = (data: unknown) => {
  const payload = data as { orderIds?: unknown[]; entries?: unknown[] }
  return payload.orderIds?.length ?? payload.entries?.length ?? 1
}

/** Consecutive rows grouped so that no group carries more than MAX_ROWS_PER_JOB items. */
function chunked<T>(rows: OutboxRow[], itemsOf: (row: OutboxRow) => T[]) {
  const groups: { rows: OutboxRow[]; items: T[] }[] = []
  for (const row of rows) {
    const items = itemsOf(row)
    const last = groups.at(-1)
    if (last && last.items.length + items.length <= MAX_ROWS_PER_JOB) {
      last.rows.push(row)
      last.items.push(...items)
    } else groups.push({ rows: [row], items: [...items] })
  }
  return groups
}

/** Records which job now carries each row, and when it was handed over. */
export async function markRelayed(tx: TransactionSql, jobs: { opts: { jobId: string }; rowIds: string[] }[]) {
  const rowIds = jobs.flatMap((job) => job.rowIds)
  const jobIds = jobs.flatMap((job) => job.rowIds.map(() => job.opts.jobId))
  await tx`
    UPDATE outbox SET sent_at = now(), job_id = relayed.job_id
    FROM unnest(${rowIds}::bigint[], ${jobIds}::text[]) AS relayed(id, job_id)
    WHERE outbox.id = relayed.id`
}

export type RelayOptions = {
  batchSize?: number
  pollIntervalMs?: number
  redisTimeoutMs?: number
  /** The wait before a pass, per job item (order or audit entry) the previous pass moved, and its bounds. */
  coalesceMsPerItem?: number
  minCoalesceMs?: number
  maxCoalesceMs?: number
}

/**
 * Moves outbox rows into BullMQ. Rows are claimed with FOR UPDATE SKIP LOCKED, so any number of
 * API processes can relay at once without sending a row twice; a row is marked sent only in the
 * transaction that saw BullMQ accept it. While Redis is down the rows simply wait.
 */
export class OutboxRelay {
  private readonly batchSize: number
  private readonly pollIntervalMs: number
  private readonly redisTimeoutMs: number
  private readonly coalesceMsPerItem: number
  private readonly minCoalesceMs: number
  private readonly maxCoalesceMs: number
  private lastPassItems = 0
  private itemsMoved = 0
  private scheduled: ReturnType<typeof setTimeout> | undefined
  private timer: ReturnType<typeof setInterval> | undefined
  private unsubscribe: (() => void) | undefined
  private draining: Promise<void> | undefined
  private wakeAgain = false
  private stopped = false
  private failing = false

  constructor(
    private readonly queues: Queues,
    options: RelayOptions = {},
  ) {
    this.batchSize = options.batchSize ?? 500
    this.pollIntervalMs = options.pollIntervalMs ?? 1_000
    this.redisTimeoutMs = options.redisTimeoutMs ?? 3_000
    this.coalesceMsPerItem = options.coalesceMsPerItem ?? 2
    this.minCoalesceMs = options.minCoalesceMs ?? 2
    this.maxCoalesceMs = options.maxCoalesceMs ?? 250
  }

  start() {
    this.stopped = false
    this.unsubscribe = onOutboxWritten(() => this.wake())
    this.timer = setInterval(() => this.wake(), this.pollIntervalMs)
    this.wake()
    return this
  }

  /**
   * Drains the outbox shortly. Wakes before the pass share it, and the wait grows with the
   * previous pass's size: an idle API relays a lone order within milliseconds, a busy one
   * moves hundreds of jobs per pass instead of paying a pass (a transaction, a commit and a
   * Redis round trip) for every few orders, which on a small machine starved the order path.
   */
  wake() {
    if (this.stopped || this.scheduled) return
    const delay = Math.min(
      this.maxCoalesceMs,
      Math.max(this.minCoalesceMs, this.lastPassItems * this.coalesceMsPerItem),
    )
    this.scheduled = setTimeout(() => {
      this.scheduled = undefined
      this.drainNow()
    }, delay)
  }

  /** Drains the outbox now; calls that arrive mid-drain schedule one more pass. */
  private drainNow() {
    if (this.stopped) return
    if (this.draining) {
      this.wakeAgain = true
      return
    }
    this.draining = this.drain().finally(() => {
      this.draining = undefined
      if (this.wakeAgain) {
        this.wakeAgain = false
        this.wake()
      }
    })
  }

  /** Stops polling and waits for the batch in flight, after one last pass over what is pending. */
  async stop() {
    clearInterval(this.timer)
    clearTimeout(this.scheduled)
    this.scheduled = undefined
    this.unsubscribe?.()
    await this.draining
    if (!this.stopped) await this.drain()
    this.stopped = true
  }

  private async drain() {
    try {
      let moved = 0
      this.itemsMoved = 0
      do moved = await this.relayBatch()
      while (moved === this.batchSize)
      this.lastPassItems = this.itemsMoved
      if (this.failing) logger.info('outbox relay: Redis is back, relaying again')
      this.failing = false
    } catch (error) {
      if (!this.failing) logger.warn({ err: error }, 'outbox relay: cannot reach Redis, jobs wait in the outbox')
      this.failing = true
    }
  }

  /** Relays one batch; returns how many rows it moved. */
  async relayBatch(): Promise<number> {
    return sql.begin(async (tx) => {
      const rows = await tx<OutboxRow[]>`
        SELECT id, queue, name, payload FROM outbox
        WHERE sent_at IS NULL ORDER BY id LIMIT ${this.batchSize}
        FOR UPDATE SKIP LOCKED`
      if (!rows.length) return 0
      const jobs = [...Map.groupBy(rows, (row) => row.queue)].map(
        ([queue, queued]) => [queue, toJobs(queue, queued)] as const,
      )
      this.itemsMoved += jobs.reduce(
        (sum, [, queued]) => sum + queued.reduce((n, job) => n + itemCount(job.data), 0),
        0,
      )
      const queued = jobs.flatMap(([, specs]) => specs)
      await withTimeout(
        Promise.all(jobs.map(([queue, specs]) => this.queues[queue].addBulk(specs))),
        this.redisTimeoutMs,
        `Redis did not answer within ${this.redisTimeoutMs} ms`,
      )
      await markRelayed(tx, queued)
      return rows.length
    })
  }
}
