import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { config } from '../src/config'
import { HOUSEKEEPING_EVERY_MS, JOB_NAMES, QUEUES, jobIdForOutboxRow } from '../src/outbox/definitions'
import { confirmOrders } from '../src/modules/orders/jobs'
import { writeAudits } from '../src/modules/audit/service'
import { deleteRelayedOutboxRows } from '../src/outbox/enqueue'
import type { Mailer, Message } from '../src/modules/notifications/service'
import { queues } from '../src/outbox/queues'
import { OutboxRelay } from '../src/outbox/relay'
import { housekeeping, startWorkers } from '../src/worker'
import {
  call,
  CountingMailer,
  countWhere,
  createAdmin,
  createProduct,
  expectError,
  registerCustomer,
  sql,
  waitFor,
  outboxItems,
} from './helpers'

/** One order's confirmation run straight (not through a job): its outcome, or the error a job would fail with. */
async function confirmOrder({ orderId }: { orderId: number }, mailer: Mailer) {
  const result = await confirmOrders([orderId], mailer)
  const [failure] = result.failures
  if (failure) throw failure.error
  if (result.skipped) return { outcome: 'skipped: order cancelled' }
  return { outcome: result.sent ? 'sent' : 'already sent' }
}

const mailer = new CountingMailer()
let relay: OutboxRelay
let workers: ReturnType<typeof startWorkers>
let admin: { token: string; user: { id: number } }
let customer: { token: string; user: { id: number; email: string } }

beforeAll(async () => {
  relay = new OutboxRelay(queues(), { pollIntervalMs: 200 }).start()
  workers = startWorkers({ mailer, concurrency: 4 })
  admin = await createAdmin()
  customer = await registerCustomer('jobs')
})

afterAll(async () => {
  await relay.stop()
  await workers.close()
})

const notificationsFor = (orderId: number) =>
  countWhere(sql`SELECT count(*)::int AS count FROM notifications WHERE order_id = ${orderId}`)
const auditsFor = (entity: string, entityId: number, action?: string) =>
  countWhere(
    sql`SELECT count(*)::int AS count FROM audit_logs WHERE entity = ${entity} AND entity_id = ${entityId}
        ${action ? sql`AND action = ${action}` : sql``}`,
  )
const statusOf = async (orderId: number) => (await sql`SELECT status FROM orders WHERE id = ${orderId}`)[0]!.status

async function placeOrder() {
  const product = await createProduct(admin.token, { inventory: 100, price_cents: 1234 })
  const reply = await call('POST', '/api/orders', {
    token: customer.token,
    body: { items: [{ product_id: product.id, quantity: 2 }] },
  })
  expect(reply.status).toBe(201)
  return reply.body as { id: number; status: string }
}

describe('post-order jobs', () => {
  test('an order leads to one notification, one audit row and status confirmed', async () => {
    const order = await placeOrder()
    expect(order.status).toBe('pending')
    expect(await waitFor(async () => (await statusOf(order.id)) === 'confirmed')).toBe(true)
    expect(await waitFor(async () => (await auditsFor('order', order.id, 'order.placed')) === 1)).toBe(true)
    // The confirmation is a transition of its own: audited, and in the history with no actor.
    expect(await waitFor(async () => (await auditsFor('order', order.id, 'order.confirmed')) === 1)).toBe(true)
    const history =
      await sql`SELECT from_status, to_status, actor_id FROM order_status_history WHERE order_id = ${order.id} ORDER BY id`
    expect([...history]).toEqual([
      { from_status: null, to_status: 'pending', actor_id: customer.user.id },
      { from_status: 'pending', to_status: 'confirmed', actor_id: null },
    ])
    expect(await notificationsFor(order.id)).toBe(1)
    const [notification] =
      await sql`SELECT recipient, subject, transport FROM notifications WHERE order_id = ${order.id}`
    expect(notification).toEqual({
      recipient: customer.user.email,
      subject: `Your order #${order.id} is confirmed`,
      transport: 'log',
    })
    const [audit] =
      await sql`SELECT actor_id, action, details FROM audit_logs WHERE entity = 'order' AND entity_id = ${order.id} AND action = 'order.placed'`
    expect(audit!.actor_id).toBe(customer.user.id)
    expect(audit!.action).toBe('order.placed')
    expect(audit!.details).toMatchObject({ totalCents: 2468 })
    const fetched = await call('GET', `/api/orders/${order.id}`, { token: customer.token })
    expect(fetched.body.status).toBe('confirmed')
    const [outbox] = await sql`SELECT count(*)::int AS unsent FROM outbox WHERE sent_at IS NULL`
    expect(outbox!.unsent).toBe(0)
  })

  test('the outbox rows are written with the order, in the same transaction', async () => {
    const before = await countWhere(sql`SELECT count(*)::int AS count FROM outbox`)
    const failed = await call('POST', '/api/orders', {
      token: customer.token,
      body: { items: [{ product_id: 2147483000, quantity: 1 }] },
    })
    expect(failed.status).toBe(404)
    expect(await countWhere(sql`SELECT count(*)::int AS count FROM outbox`)).toBe(before)
    const order = await placeOrder()
    const rows =
      await sql`SELECT queue, name, payload FROM ${outboxItems} WHERE payload->>'orderId' = ${String(order.id)} OR payload->>'entityId' = ${String(order.id)} AND payload->>'entity' = 'order'`
    expect(rows.map((row) => row.queue).sort()).toEqual([QUEUES.audit, QUEUES.orderConfirmation].sort())
  })

  test('a job run twice leaves one notification and one audit row, and sends once', async () => {
    const order = await placeOrder()
    await waitFor(async () => (await statusOf(order.id)) === 'confirmed' && (await auditsFor('order', order.id)) === 2)
    const sentBefore = mailer.sent.length
    await confirmOrder({ orderId: order.id }, mailer)
    await confirmOrder({ orderId: order.id }, mailer)
    const [audit] =
      await sql`SELECT job_key FROM audit_logs WHERE entity = 'order' AND entity_id = ${order.id} AND action = 'order.placed'`
    const payload = {
      actorId: customer.user.id,
      action: 'order.placed' as const,
      entity: 'order' as const,
      entityId: order.id,
      details: {},
    }
    await writeAudits([{ ...payload, key: audit!.job_key }])
    await writeAudits([{ ...payload, key: audit!.job_key }])
    expect(mailer.sent.length).toBe(sentBefore)
    expect(await notificationsFor(order.id)).toBe(1)
    expect(await auditsFor('order', order.id)).toBe(2) // placed and confirmed
    expect(
      await countWhere(sql`SELECT count(*)::int AS count FROM order_status_history WHERE order_id = ${order.id}`),
    ).toBe(2)
  })

  describe('the confirmation is claimed before it is sent', () => {
    /** An order with no outbox rows, so only this test runs its confirmation. */
    const bareOrder = async () =>
      (await sql`INSERT INTO orders (user_id, total_cents) VALUES (${customer.user.id}, 500) RETURNING id`)[0]!
        .id as number
    /** A mailer that takes its time, as SMTP does, so that two runs overlap. */
    class SlowMailer extends CountingMailer {
      override async deliver(message: Message) {
        await Bun.sleep(300)
        await super.deliver(message)
      }
    }

    test('two runs at once (a stalled job picked up while the first is alive): one send', async () => {
      const orderId = await bareOrder()
      const slow = new SlowMailer()
      const runs = await Promise.allSettled([
        confirmOrder({ orderId }, slow),
        Bun.sleep(50).then(() => confirmOrder({ orderId }, slow)),
      ])
      expect(slow.sent.length).toBe(1)
      expect(runs[0].status).toBe('fulfilled')
      // The second run found a live claim: it fails, to be retried by BullMQ, and sends nothing.
      expect(runs[1].status).toBe('rejected')
      expect(await confirmOrder({ orderId }, slow)).toEqual({ outcome: 'already sent' })
      expect(slow.sent.length).toBe(1)
      const [row] =
        await sql`SELECT count(*)::int AS count, bool_and(sent_at IS NOT NULL) AS sent FROM notifications WHERE order_id = ${orderId}`
      expect(row).toEqual({ count: 1, sent: true })
      expect(await statusOf(orderId)).toBe('confirmed')
    })

    test('a failed send releases the claim, so the retry sends at once', async () => {
      const orderId = await bareOrder()
      const failing: Mailer = { transport: 'log', deliver: () => Promise.reject(new Error('SMTP down')) }
      await expect(confirmOrder({ orderId }, failing)).rejects.toThrow('SMTP down')
      const retry = new CountingMailer()
      expect(await confirmOrder({ orderId }, retry)).toEqual({ outcome: 'sent' })
      expect(retry.sent.length).toBe(1)
    })

    test('a claim left by a run that died before sending is taken over after a job lock', async () => {
      const orderId = await bareOrder()
      await sql`
        INSERT INTO notifications (dedupe_key, user_id, order_id, transport, recipient, subject, body, claimed_at)
        VALUES (${`order-confirmation:${orderId}`}, ${customer.user.id}, ${orderId}, 'log', 'x@example.com', 's', 'b', now() - interval '1 hour')`
      const retry = new CountingMailer()
      expect(await confirmOrder({ orderId }, retry)).toEqual({ outcome: 'sent' })
      expect(retry.sent.length).toBe(1)
      expect(await statusOf(orderId)).toBe('confirmed')
    })
  })

  test('a job delivered twice through BullMQ (same id, and a re-added copy) still has one effect', async () => {
    const order = await placeOrder()
    await waitFor(async () => (await statusOf(order.id)) === 'confirmed')
    const queue = queues()[QUEUES.orderConfirmation]
    const [row] =
      await sql`SELECT id FROM ${outboxItems} WHERE queue = ${QUEUES.orderConfirmation} AND payload->>'orderId' = ${String(order.id)}`
    await queue.add('order.confirmation', { orderId: order.id }, { jobId: jobIdForOutboxRow(row!.id) }) // ignored: id exists
    const copy = await queue.add('order.confirmation', { orderId: order.id }, { jobId: `replay-${order.id}` })
    expect(await waitFor(async () => (await copy.getState()) === 'completed')).toBe(true)
    expect(await notificationsFor(order.id)).toBe(1)
  })

  test('product create, update and delete are audited with the admin as actor', async () => {
    const product = await createProduct(admin.token, { inventory: 1 })
    await call('PUT', `/api/products/${product.id}`, { token: admin.token, body: { price_cents: 99 } })
    await call('DELETE', `/api/products/${product.id}`, { token: admin.token })
    for (const action of ['product.created', 'product.updated', 'product.deleted'])
      expect(await waitFor(async () => (await auditsFor('product', product.id, action)) === 1)).toBe(true)
    const rows =
      await sql`SELECT actor_id, details FROM audit_logs WHERE entity = 'product' AND entity_id = ${product.id} AND action = 'product.updated'`
    expect(rows[0]!.actor_id).toBe(admin.user.id)
    expect(rows[0]!.details).toEqual({ changes: { price_cents: 99 } })
  })

  test('shipped and delivered reach the customer through the relay and the worker, and are audited', async () => {
    const order = await placeOrder()
    expect(await waitFor(async () => (await statusOf(order.id)) === 'confirmed')).toBe(true)
    const move = (body: Record<string, unknown>) =>
      call('POST', `/api/orders/${order.id}/status`, { token: admin.token, body })
    expect((await move({ status: 'processing' })).status).toBe(200)
    expect((await move({ status: 'shipped', carrier: 'UPS', tracking_number: '1Z999' })).status).toBe(200)
    expect((await move({ status: 'delivered' })).status).toBe(200)
    const subjects = await waitFor(async () => {
      const rows =
        await sql`SELECT subject FROM notifications WHERE order_id = ${order.id} AND sent_at IS NOT NULL ORDER BY id`
      return rows.length === 3 ? rows.map((row) => row.subject).sort() : undefined
    })
    // Separate jobs, run concurrently: sent once each, in no promised order.
    expect(subjects).toEqual([
      `Your order #${order.id} has been delivered`,
      `Your order #${order.id} has shipped`,
      `Your order #${order.id} is confirmed`,
    ])
    for (const action of ['order.processing', 'order.shipped', 'order.delivered'])
      expect(await waitFor(async () => (await auditsFor('order', order.id, action)) === 1)).toBe(true)
  })

  test('a confirmation for a cancelled order sends nothing and keeps it cancelled', async () => {
    const order = await placeOrder()
    await waitFor(async () => (await statusOf(order.id)) === 'confirmed')
    await sql`UPDATE orders SET status = 'cancelled' WHERE id = ${order.id}`
    await sql`DELETE FROM notifications WHERE order_id = ${order.id}`
    const sentBefore = mailer.sent.length
    await confirmOrder({ orderId: order.id }, mailer)
    expect(await statusOf(order.id)).toBe('cancelled')
    expect(mailer.sent.length).toBe(sentBefore)
  })
})

describe('queue names in SQL', () => {
  test('the events fan-out trigger (SQL, migration 0007) writes the queue and job names definitions.ts declares', async () => {
    const [row] = await sql<
      { definition: string }[]
    >`SELECT pg_get_functiondef('fan_out_events'::regproc) AS definition`
    expect(row!.definition).toContain(`'${QUEUES.webhooks}', '${JOB_NAMES.webhookDelivery}'`)
  })
})

describe('housekeeping', () => {
  test('outbox rows done over a week ago are deleted; recent ones and unfinished ones stay', async () => {
    const rows = await sql<{ id: string }[]>`
      INSERT INTO outbox (queue, name, payload, sent_at, done_at) VALUES
        ('audit', 'audit', '{}', now() - interval '8 days', now() - interval '8 days'),
        ('audit', 'audit', '{}', now() - interval '8 days', now() - interval '1 day'),
        ('audit', 'audit', '{}', now() - interval '8 days', NULL),
        ('audit', 'audit', '{}', now(), now())
      RETURNING id`
    expect(await deleteRelayedOutboxRows()).toBeGreaterThanOrEqual(1)
    const left = await sql`SELECT id FROM outbox WHERE id IN ${sql(rows.map((row) => row.id))} ORDER BY id`
    expect(left.map((row) => row.id)).toEqual([rows[1]!.id, rows[2]!.id, rows[3]!.id])
    await sql`DELETE FROM outbox WHERE id IN ${sql(rows.map((row) => row.id))}`
  })
})

describe('housekeeping and payload checks', () => {
  test('housekeeping and the reconciler are one job scheduler each for the whole cluster, however many workers start', async () => {
    const second = startWorkers({ mailer, concurrency: 1 })
    try {
      const queue = queues()[QUEUES.housekeeping]
      const schedulers = await waitFor(async () => {
        const found = await queue.getJobSchedulers()
        return found.length === 2 ? found : undefined
      })
      expect(schedulers!.map((scheduler) => [scheduler.key, scheduler.every]).sort()).toEqual([
        ['housekeeping', HOUSEKEEPING_EVERY_MS],
        ['reconcile', config.RECONCILE_INTERVAL_SECONDS * 1000],
      ])
    } finally {
      await second.close()
    }
  })

  test('a housekeeping run deletes expired idempotency keys and old relayed outbox rows', async () => {
    const [old] = await sql`
      INSERT INTO outbox (queue, name, payload, sent_at, done_at)
      VALUES ('audit', 'audit', '{}'::jsonb, now() - interval '8 days', now() - interval '8 days') RETURNING id`
    expect((await housekeeping()).outboxRows).toBeGreaterThanOrEqual(1)
    expect(await countWhere(sql`SELECT count(*)::int AS count FROM outbox WHERE id = ${old!.id}`)).toBe(0)
  })

  test('a job whose payload does not match its schema fails for good, with the reason', async () => {
    const queue = queues()[QUEUES.audit]
    const job = await queue.add(JOB_NAMES.audit, {
      entries: [{ key: 'k', actorId: 'me', action: 'order.placed', entity: 'order', entityId: 1, details: {} }],
    })
    const failed = await waitFor(async () =>
      (await job.getState()) === 'failed' ? await queue.getJob(job.id!) : undefined,
    )
    expect(failed!.failedReason).toMatch(/^Invalid audit payload: \/entries\/0\/actorId/)
    expect(failed!.attemptsMade).toBe(1)
  })
})

describe('queue operations', () => {
  test('GET /api/admin/queues: counts per queue and state plus the outbox backlog; admins only', async () => {
    const reply = await call('GET', '/api/admin/queues', { token: admin.token })
    expect(reply.status).toBe(200)
    for (const queue of [QUEUES.orderConfirmation, QUEUES.audit]) {
      expect(Object.keys(reply.body.queues[queue]).sort()).toEqual([
        'active',
        'completed',
        'delayed',
        'failed',
        'waiting',
      ])
      expect(Object.values(reply.body.queues[queue]).every((n) => Number.isInteger(n))).toBe(true)
    }
    expect(reply.body.queues[QUEUES.orderConfirmation].completed).toBeGreaterThan(0)
    expect(reply.body.outbox.backlog).toBeGreaterThanOrEqual(0)
    expectError(await call('GET', '/api/admin/queues'), 401)
    expectError(await call('GET', '/api/admin/queues', { token: customer.token }), 403)
  })

  test('an exhausted job stays in the failed set and an admin can retry it', async () => {
    const queue = queues()[QUEUES.orderConfirmation]
    // No such order: the handler gives up at once (UnrecoverableError) and the job lands in failed.
    const job = await queue.add('order.confirmation', { orderId: 2147483600 }, { jobId: `missing-order-${Date.now()}` })
    expect(await waitFor(async () => (await job.getState()) === 'failed')).toBe(true)
    const firstRun = (await queue.getJob(job.id!))!.processedOn!
    const counts = await call('GET', '/api/admin/queues', { token: admin.token })
    expect(counts.body.queues[QUEUES.orderConfirmation].failed).toBeGreaterThanOrEqual(1)

    expectError(
      await call('POST', `/api/admin/queues/${QUEUES.orderConfirmation}/retry`, { token: customer.token }),
      403,
    )
    expectError(await call('POST', '/api/admin/queues/no-such-queue/retry', { token: admin.token }), 400)
    const retried = await call('POST', `/api/admin/queues/${QUEUES.orderConfirmation}/retry`, { token: admin.token })
    expect(retried.status).toBe(200)
    expect(retried.body.retried).toBeGreaterThanOrEqual(1)
    // It ran again (and, the order still missing, failed again).
    const ranAgain = async () => {
      const current = await queue.getJob(job.id!)
      return (current?.processedOn ?? 0) > firstRun && (await current!.getState()) === 'failed'
    }
    expect(await waitFor(ranAgain)).toBe(true)
  })

  test('Bull Board at /admin/queues asks for admin credentials (HTTP basic auth)', async () => {
    const anonymous = await call('GET', '/admin/queues')
    expect(anonymous.status).toBe(401)
    expect(anonymous.headers.get('www-authenticate')).toStartWith('Basic')
    const basic = (user: string, password: string) => ({ authorization: `Basic ${btoa(`${user}:${password}`)}` })
    expect((await call('GET', '/admin/queues', { headers: basic(customer.user.email, 'password123') })).status).toBe(
      401,
    )
    const [adminRow] = await sql`SELECT email FROM users WHERE id = ${admin.user.id}`
    expect((await call('GET', '/admin/queues', { headers: basic(adminRow!.email, 'wrong') })).status).toBe(401)
    const page = await call('GET', '/admin/queues', { headers: basic(adminRow!.email, 'admin-password') })
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toContain('text/html')
    const api = await call('GET', '/admin/queues/api/queues', { headers: basic(adminRow!.email, 'admin-password') })
    expect(api.status).toBe(200)
    expect(api.body.queues.map((queue: { name: string }) => queue.name).sort()).toEqual(Object.values(QUEUES).sort())
  })

  test('/health/ready now checks Redis too', async () => {
    const reply = await call('GET', '/health/ready')
    expect(reply.body.checks.redis).toEqual({ status: 'ok' })
  })
})
