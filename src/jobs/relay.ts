import { sql } from '../db/client'
import { logger } from '../lib/logger'
import { withTimeout } from '../lib/timeout'
import {
  type AuditPayload,
  jobIdForOutboxRow,
  jobIdForOutboxRows,
  MAX_ROWS_PER_JOB,
  type OrderConfirmationPayload,
  QUEUES,
  type QueueName,
} from './definitions'
import { onOutboxWritten } from './outbox'
import type { Queues } from './queues'

type OutboxRow = { id: string; queue: QueueName; name: string; payload: unknown }

/**
 * Confirmation and audit rows travel many to a job (up to MAX_ROWS_PER_JOB, named after the
 * rows they carry), so the worker handles a pass's orders in a few round trips; other rows go
 * one to a job.
 */
function toJobs(queue: QueueName, rows: OutboxRow[]) {
  const chunks = (size: number) =>
    Array.from({ length: Math.ceil(rows.length / size) }, (_, i) => rows.slice(i * size, (i + 1) * size))
  const job = (chunk: OutboxRow[], data: unknown) => ({
    name: chunk[0]!.name,
    data,
    opts: { jobId: jobIdForOutboxRows(chunk.map((row) => row.id)) },
  })
  switch (queue) {
    case QUEUES.orderConfirmation:
      return chunks(MAX_ROWS_PER_JOB).map((chunk) =>
        job(chunk, { orderIds: chunk.map((row) => (row.payload as OrderConfirmationPayload).orderId) }),
      )
    case QUEUES.audit:
      return chunks(MAX_ROWS_PER_JOB).map((chunk) =>
        job(chunk, {
          entries: chunk.map((row) => ({ ...(row.payload as AuditPayload), key: jobIdForOutboxRow(row.id) })),
        }),
      )
    default:
      return chunks(1).map((chunk) => job(chunk, chunk[0]!.payload))
  }
}

export type RelayOptions = {
  batchSize?: number
  pollIntervalMs?: number
  redisTimeoutMs?: number
  /** The wait before a pass, per row the previous pass moved (adaptive batching), and its bounds. */
  coalesceMsPerRow?: number
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
  private readonly coalesceMsPerRow: number
  private readonly minCoalesceMs: number
  private readonly maxCoalesceMs: number
  private lastBatchRows = 0
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
    this.coalesceMsPerRow = options.coalesceMsPerRow ?? 2
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
    const delay = Math.min(this.maxCoalesceMs, Math.max(this.minCoalesceMs, this.lastBatchRows * this.coalesceMsPerRow))
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
      do moved = await this.relayBatch()
      while (moved === this.batchSize)
      this.lastBatchRows = moved
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
      const byQueue = Map.groupBy(rows, (row) => row.queue)
      await withTimeout(
        Promise.all([...byQueue].map(([queue, queued]) => this.queues[queue].addBulk(toJobs(queue, queued)))),
        this.redisTimeoutMs,
        `Redis did not answer within ${this.redisTimeoutMs} ms`,
      )
      await tx`UPDATE outbox SET sent_at = now() WHERE id = ANY(${rows.map((row) => row.id)}::bigint[])`
      return rows.length
    })
  }
}
