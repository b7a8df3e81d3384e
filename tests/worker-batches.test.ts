import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Queue } from 'bullmq'
import { JOB_NAMES, QUEUES } from '../src/outbox/definitions'
import type { Message } from '../src/modules/notifications/service'
import type { Queues } from '../src/outbox/queues'
import { OutboxRelay } from '../src/outbox/relay'
import { startWorkers } from '../src/worker'
import { redis } from '../src/lib/redis'
import { placeOrderBatch } from '../src/modules/orders/batch'
import { placeSingleOrder } from '../src/modules/orders/place'
import {
  CountingMailer,
  countWhere,
  createAdmin,
  createProduct,
  registerCustomer,
  sql,
  waitFor,
} from './helpers'

// The relay hands many orders to one job, and the worker confirms and audits them together;
// an order that fails leaves the batch and is retried as a job of its own.

const prefix = `worker-batches-${process.pid}-${Date.now()}`
const queues = {
  [QUEUES.orderConfirmation]: new Queue(QUEUES.orderConfirmation, { connection: redis(), prefix }),
  [QUEUES.audit]: new Queue(QUEUES.audit, { connection: redis(), prefix }),
  [QUEUES.housekeeping]: new Queue(QUEUES.housekeeping, { connection: redis(), prefix }),
} as Queues

/** Delivers, except to the recipients named in `refuse` (each refused once). */
class FlakyMailer extends CountingMailer {
  constructor(readonly refuse = new Set<string>()) {
    super()
  }
  override async deliver(message: Message) {
    if (this.refuse.delete(message.to)) throw new Error(`mailbox of ${message.to} unavailable`)
    await super.deliver(message)
  }
}

let adminToken: string
let customers: { id: number; email: string }[]

beforeAll(async () => {
  adminToken = (await createAdmin()).token
  customers = await Promise.all(Array.from({ length: 3 }, async (_, i) => (await registerCustomer(`wb${i}`)).user))
  // Rows other test files left unrelayed are not this file's to relay.
  await sql`UPDATE outbox SET sent_at = now() WHERE sent_at IS NULL`
})

afterAll(async () => {
  await Promise.all(Object.values(queues).map((queue) => queue.close()))
})

async function placeOrders(count: number) {
  const product = await createProduct(adminToken, { inventory: 100 })
  await sql`UPDATE outbox SET sent_at = now() WHERE sent_at IS NULL` // the product's own audit row
  const outcomes = await placeOrderBatch(
    Array.from({ length: count }, (_, i) => ({
      userId: customers[i % customers.length]!.id,
      productIds: [product.id],
      quantities: [1],
    })),
  )
  return outcomes.map((outcome) => (outcome.kind === 'placed' ? outcome.order.id : -1))
}

const jobsOf = async (queue: Queue) => queue.getJobs(['waiting', 'active', 'completed', 'failed', 'delayed'])

describe('the relay', () => {
  test('a pass’s orders, from batches and lone orders alike, go to one confirmation and one audit job', async () => {
    const product = await createProduct(adminToken, { inventory: 10 })
    const batchIds = await placeOrders(5) // two outbox rows for the whole batch
    const lone = await placeSingleOrder({ userId: customers[0]!.id, productIds: [product.id], quantities: [1] })
    const loneId = lone.kind === 'placed' ? lone.order.id : -1
    const relay = new OutboxRelay(queues)
    expect(await relay.relayBatch()).toBe(4)
    const [confirmation] = await jobsOf(queues[QUEUES.orderConfirmation])
    const [audit] = await jobsOf(queues[QUEUES.audit])
    expect(confirmation!.data).toEqual({ orderIds: [...batchIds, loneId] })
    expect(confirmation!.id).toMatch(/^outbox-\d+-\d+$/)
    expect(audit!.data.entries.map((entry: { entityId: number }) => entry.entityId)).toEqual([...batchIds, loneId])
    // Each audit entry keeps a key of its own, the fact's, whichever path placed the order.
    expect(audit!.data.entries.map((entry: { key: string }) => entry.key)).toEqual(
      [...batchIds, loneId].map((id) => `order-placed:${id}`),
    )
  })
})

describe('the worker', () => {
  test('confirms a batch in bulk; a missing order and a failed send split off, and the retry sends once', async () => {
    // Only this test's job: the relay test's jobs would meet the flaky mailer first.
    await queues[QUEUES.orderConfirmation].obliterate({ force: true })
    const orderIds = await placeOrders(4)
    const [cancelled] = await placeOrders(1)
    await sql`UPDATE orders SET status = 'cancelled' WHERE id = ${cancelled!}`
    const flaky = customers[1]!.email
    const mailer = new FlakyMailer(new Set([flaky]))
    const missing = 2_147_483_000
    const job = await queues[QUEUES.orderConfirmation].add(
      JOB_NAMES.orderConfirmation,
      { orderIds: [...orderIds, cancelled!, missing] },
      { jobId: `test-batch-${Date.now()}`, attempts: 3, backoff: { type: 'fixed', delay: 100 } },
    )
    const workers = startWorkers({ mailer, prefix, concurrency: 4 })
    try {
      // The batch completes; its failed orders continue as jobs of their own.
      expect(await waitFor(async () => (await job.getState()) === 'completed')).toBe(true)
      const confirmed = async () =>
        countWhere(sql`SELECT count(*)::int AS count FROM orders WHERE id = ANY(${orderIds}) AND status = 'confirmed'`)
      expect(await waitFor(async () => (await confirmed()) === 4)).toBe(true)
      const split = await waitFor(async () => {
        const jobs = (await jobsOf(queues[QUEUES.orderConfirmation])).filter((j) =>
          j.id!.startsWith(`${job.id}-order-`),
        )
        return jobs.length === 2 ? jobs : undefined
      })
      expect(split!.map((j) => j.id).sort()).toEqual(
        [`${job.id}-order-${orderIds[1]}`, `${job.id}-order-${missing}`].sort(),
      )
      const missingJob = split!.find((j) => j.id === `${job.id}-order-${missing}`)!
      expect(await waitFor(async () => (await missingJob.getState()) === 'failed')).toBe(true)
      expect((await queues[QUEUES.orderConfirmation].getJob(missingJob.id!))!.failedReason).toContain(
        `Order ${missing} does not exist`,
      )
      // One message per order, the flaky one included (after its retry); none for the cancelled one.
      expect(mailer.sent.map((message) => message.subject).sort()).toEqual(
        orderIds.map((id) => `Your order #${id} is confirmed`).sort(),
      )
      expect(
        await countWhere(sql`SELECT count(*)::int AS count FROM notifications WHERE order_id = ${cancelled!}`),
      ).toBe(0)
      expect(
        await countWhere(
          sql`SELECT count(*)::int AS count FROM notifications WHERE order_id = ANY(${orderIds}) AND sent_at IS NOT NULL`,
        ),
      ).toBe(4)
    } finally {
      await workers.close()
    }
  })

  test('audit entries of a batch are written once, however often they are delivered', async () => {
    const entries = Array.from({ length: 3 }, (_, i) => ({
      key: `test-audit-${Date.now()}-${i}`,
      actorId: customers[0]!.id,
      action: 'order.placed',
      entity: 'order',
      entityId: 1_000_000 + i,
      details: { n: i },
    }))
    const workers = startWorkers({ mailer: new FlakyMailer(), prefix, concurrency: 4 })
    try {
      const first = await queues[QUEUES.audit].add(JOB_NAMES.audit, { entries })
      const again = await queues[QUEUES.audit].add(JOB_NAMES.audit, { entries: [entries[1]!, entries[2]!] })
      for (const job of [first, again])
        expect(await waitFor(async () => (await job.getState()) === 'completed')).toBe(true)
      const rows =
        await sql`SELECT job_key, details FROM audit_logs WHERE job_key = ANY(${entries.map((e) => e.key)}) ORDER BY job_key`
      expect(rows.map((row) => row.job_key)).toEqual(entries.map((e) => e.key))
    } finally {
      await workers.close()
    }
  })
})
