import type { Queue } from 'bullmq'
import type { TransactionSql } from 'postgres'
import { sql } from '../db/client'
import { logger } from '../lib/logger'
import { withTimeout } from '../lib/timeout'
import { startHandOver, type TraceCarrier } from '../lib/tracing'
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

export type OutboxRow = {
  id: string
  queue: QueueName
  name: string
  payload: unknown
  trace_context?: TraceCarrier[] | null
}

/**
 * Confirmation and audit rows travel many to a job (up to MAX_ROWS_PER_JOB orders or entries,
 * named after the rows they carry), so the worker handles a pass's orders in a few round trips.
 * A row holds the orders of one statement (`{orderIds}`, `{entries}`: see orders/placement.ts),
 * or one audit entry keyed by the row (a product change, a low-stock crossing), or, queued by an
 * older API, one order. Other rows go one to a job.
 */
export function toJobs(queue: QueueName, rows: OutboxRow[]) {
  const job = (chunk: OutboxRow[], data: unknown) => ({
    name: chunk[0]!.name,
    data,
    opts: { jobId: jobIdForOutboxRows(chunk.map((row) => row.id)) },
    rowIds: chunk.map((row) => row.id),
    traceContexts: chunk.flatMap((row) => row.trace_context ?? []),
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

/**
 * Adds the jobs to their queue, each in an `outbox relay` span that continues the traces of the
 * rows it carries (the child of the first, linked to the rest) and hands its context to the job,
 * so the worker's spans join the same traces. Untraced, a plain addBulk.
 */
export async function addTraced(queue: Queue, specs: ReturnType<typeof toJobs>) {
  const handOvers = specs.map((spec) =>
    startHandOver('outbox relay', spec.traceContexts, {
      'messaging.system': 'bullmq',
      'messaging.destination.name': queue.name,
      'outbox.rows': spec.rowIds.length,
    }),
  )
  if (!handOvers.some(Boolean)) return queue.addBulk(specs)
  const jobs = specs.map((spec, i) => {
    const metadata = handOvers[i]?.metadata
    return metadata ? { ...spec, opts: { ...spec.opts, telemetry: { metadata } } } : spec
  })
  try {
    return await queue.addBulk(jobs)
  } catch (error) {
    for (const handOver of handOvers) handOver?.span.recordException(error as Error)
    throw error
  } finally {
    for (const handOver of handOvers) handOver?.span.end()
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
  /** Passes skip rows below the highest id relayed this long ago (see `from`)… */
  lateCommitMs?: number
  /** …except one this often, which starts at the first row. */
  fullPassEveryMs?: number
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
  private readonly lateCommitMs: number
  private readonly fullPassEveryMs: number
  /** The highest id each recent pass relayed, and when. */
  private relayedUpTo: { at: number; id: number }[] = []
  private floor = 0
  private lastFullPassAt = Number.NEGATIVE_INFINITY
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
    this.lateCommitMs = options.lateCommitMs ?? 5_000
    this.fullPassEveryMs = options.fullPassEveryMs ?? 10_000
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

  /**
   * Where a pass starts. A relayed row leaves an entry in the unsent-rows index that vacuum
   * removes only once no transaction could still see the row unsent; while one stays open (a
   * backup's pg_dump, for minutes), a pass from the first row walks every row relayed since it
   * began (measured: a thousand more buffers a pass for each 40 000 rows relayed), several times
   * a second. So a pass starts at the highest id relayed lateCommitMs ago: a row below it was
   * written before that row was, and is still unsent only if its transaction committed later
   * than lateCommitMs after writing it. One pass every fullPassEveryMs starts at the first row,
   * for those.
   */
  private from(now: number) {
    if (now - this.lastFullPassAt >= this.fullPassEveryMs) {
      this.lastFullPassAt = now
      return 0
    }
    while (this.relayedUpTo.length && this.relayedUpTo[0]!.at <= now - this.lateCommitMs)
      this.floor = Math.max(this.floor, this.relayedUpTo.shift()!.id)
    return this.floor
  }

  private async drain() {
    try {
      let moved = 0
      this.itemsMoved = 0
      const from = this.from(performance.now())
      do moved = await this.relayBatch(from)
      while (moved === this.batchSize)
      this.lastPassItems = this.itemsMoved
      if (this.failing) logger.info('outbox relay: Redis is back, relaying again')
      this.failing = false
    } catch (error) {
      if (!this.failing) logger.warn({ err: error }, 'outbox relay: cannot reach Redis, jobs wait in the outbox')
      this.failing = true
    }
  }

  /** Relays one batch of the rows from id `from` on; returns how many rows it moved. */
  async relayBatch(from = 0): Promise<number> {
    const moved = await sql.begin(async (tx) => {
      const rows = await tx<OutboxRow[]>`
        SELECT id, queue, name, payload, trace_context FROM outbox
        WHERE sent_at IS NULL AND id >= ${from} ORDER BY id LIMIT ${this.batchSize}
        FOR UPDATE SKIP LOCKED`
      if (!rows.length) return rows
      const jobs = [...Map.groupBy(rows, (row) => row.queue)].map(
        ([queue, queued]) => [queue, toJobs(queue, queued)] as const,
      )
      this.itemsMoved += jobs.reduce(
        (sum, [, queued]) => sum + queued.reduce((n, job) => n + itemCount(job.data), 0),
        0,
      )
      const queued = jobs.flatMap(([, specs]) => specs)
      await withTimeout(
        Promise.all(jobs.map(([queue, specs]) => addTraced(this.queues[queue], specs))),
        this.redisTimeoutMs,
        `Redis did not answer within ${this.redisTimeoutMs} ms`,
      )
      await markRelayed(tx, queued)
      return rows
    })
    if (moved.length) this.relayedUpTo.push({ at: performance.now(), id: Number(moved.at(-1)!.id) })
    return moved.length
  }
}
