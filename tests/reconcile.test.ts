import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { Queue } from 'bullmq'
import { JOB_NAMES, QUEUE_NAMES, QUEUES, SCHEDULER_IDS } from '../src/outbox/definitions'
import type { Queues } from '../src/outbox/queues'
import { reconcile } from '../src/outbox/reconcile'
import { effects as effectChecks } from '../src/worker'
import { createProducerConnection } from '../src/lib/redis'
import { call, countWhere, createAdmin, createProduct, freePort, registerCustomer, sql, waitFor } from './helpers'
import { spawnService, startApi, startWorker, stopServices } from './processes'
import { webhookReceiver } from './webhook-receiver'

// Redis forgetting jobs the outbox had handed over: the reconciler must bring back every effect,
// exactly once. Each test runs on a queue prefix of its own; the suite's other processes are
// stopped after each test, so that no one else relays this file's outbox rows.

const receiver = webhookReceiver().start()
const connection = createProducerConnection(process.env.REDIS_URL)
let admin: { token: string }
let endpointId: number

beforeAll(async () => {
  admin = await createAdmin()
  const created = await call('POST', '/api/admin/webhooks', {
    token: admin.token,
    body: { url: receiver.url('/orders'), events: ['order.placed'] },
  })
  expect(created.status).toBe(201)
  endpointId = created.body.id
})

afterEach(stopServices)

afterAll(async () => {
  receiver.stop()
  // Later test files must not deliver to this file's endpoint.
  await sql`DELETE FROM webhook_endpoints WHERE id = ${endpointId}`
  connection.disconnect()
})

const queuesOn = (prefix: string) =>
  Object.fromEntries(QUEUE_NAMES.map((name) => [name, new Queue(name, { connection, prefix })])) as Queues

async function forgetEverything(prefix: string) {
  let cursor = '0'
  do {
    const [next, keys] = await connection.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
    if (keys.length) await connection.del(...keys)
    cursor = next
  } while (cursor !== '0')
}

async function placeOrders(base: string, count: number) {
  const { token } = await registerCustomer('reconcile')
  const product = await createProduct(admin.token, { inventory: 1000 })
  const replies = await Promise.all(
    Array.from({ length: count }, () =>
      fetch(`${base}/api/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ items: [{ product_id: product.id, quantity: 1 }] }),
      }).then(async (response) => ({ status: response.status, body: (await response.json()) as { id: number } })),
    ),
  )
  expect(replies.map((reply) => reply.status)).toEqual(Array(count).fill(201))
  return replies.map((reply) => reply.body.id)
}

/** Every outbox row these orders wrote (confirmations, audits, webhook deliveries), relayed. */
const allRelayed = async (orderIds: number[]) =>
  (await countWhere(sql`
    SELECT count(*)::int AS count FROM outbox o
    WHERE o.sent_at IS NULL AND (
      o.payload->'orderIds' @> ANY(${orderIds.map((id) => JSON.stringify([id]))}::jsonb[]) OR (o.payload->>'orderId')::int = ANY(${orderIds})
      OR (o.payload->'entries' @> ANY(${orderIds.map((id) => JSON.stringify([{ entityId: id }]))}::jsonb[]))
      OR (o.payload->>'entityId')::int = ANY(${orderIds})
      OR (o.payload->>'deliveryId')::int IN (SELECT d.id FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
                                             WHERE e.order_id = ANY(${orderIds})))`)) === 0

const effects = async (orderIds: number[]) => ({
  confirmed: await countWhere(
    sql`SELECT count(*)::int AS count FROM orders WHERE id = ANY(${orderIds}) AND status = 'confirmed'`,
  ),
  notifications: await countWhere(
    sql`SELECT count(*)::int AS count FROM notifications WHERE order_id = ANY(${orderIds}) AND sent_at IS NOT NULL`,
  ),
  audits: await countWhere(
    sql`SELECT count(*)::int AS count FROM audit_logs
        WHERE entity = 'order' AND action = 'order.placed' AND entity_id = ANY(${orderIds})`,
  ),
  deliveriesAttempted: await countWhere(
    sql`SELECT count(*)::int AS count FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
        WHERE e.order_id = ANY(${orderIds}) AND d.endpoint_id = ${endpointId} AND d.attempts > 0`,
  ),
})

describe('Redis loses every key under the prefix after the relay handed the jobs over', () => {
  test('the worker registers its schedulers again and the reconciler brings back every effect, once', async () => {
    const prefix = `reconcile-${process.pid}-${Date.now()}`
    const settings = { QUEUE_PREFIX: prefix, WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' }
    const metricsPort = freePort()
    const worker = startWorker(
      {
        ...settings,
        RECONCILE_AFTER_SECONDS: '5',
        RECONCILE_INTERVAL_SECONDS: '2',
        WORKER_METRICS_PORT: String(metricsPort),
        LOG_LEVEL: 'info',
      },
      { log: true },
    )
    const schedulers = queuesOn(prefix)[QUEUES.housekeeping]
    const registered = () => schedulers.getJobScheduler(SCHEDULER_IDS.reconcile)
    expect(await waitFor(registered)).toBeTruthy()
    // The worker is paused (as if busy elsewhere) while orders are placed and Redis forgets.
    worker.child.kill('SIGSTOP')
    try {
      const api = await startApi(settings)
      const orderIds = await placeOrders(api.base, 12)
      expect(await waitFor(() => allRelayed(orderIds), 20_000, 100)).toBe(true)
      await forgetEverything(prefix)
      expect(await registered()).toBeUndefined()
      worker.child.kill('SIGCONT')

      const done = await waitFor(
        async () => {
          const now = await effects(orderIds)
          return Object.values(now).every((count) => count === 12) ? now : undefined
        },
        30_000,
        250,
      )
      expect(done).toEqual({ confirmed: 12, notifications: 12, audits: 12, deliveriesAttempted: 12 })
      expect(await registered()).toBeTruthy()
      // Exactly once: one message and one audit row per order, one request per delivery.
      const perOrder = await sql<{ notifications: number; audits: number }[]>`
        SELECT (SELECT count(*)::int FROM notifications n WHERE n.order_id = o.id) AS notifications,
               (SELECT count(*)::int FROM audit_logs a WHERE a.entity = 'order' AND a.entity_id = o.id
                  AND a.action = 'order.placed') AS audits
        FROM orders o WHERE o.id = ANY(${orderIds})`
      expect([...perOrder]).toEqual(orderIds.map(() => ({ notifications: 1, audits: 1 })))
      const delivered = receiver.at('/orders').map((arrival) => arrival.headers['webhook-id'])
      const ours = await sql<{ id: number }[]>`
        SELECT d.id FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
        WHERE e.order_id = ANY(${orderIds}) AND d.endpoint_id = ${endpointId}`
      expect(ours.length).toBe(12)
      expect(new Set(delivered).size).toBe(delivered.length)
      // What the operator sees: the count by kind, and a line for each pass that found something.
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
      for (const kind of [QUEUES.orderConfirmation, QUEUES.audit, QUEUES.webhooks])
        expect(metrics).toMatch(new RegExp(`reconciled_items_total\\{kind="${kind}"\\} [1-9]`))
      const passes = worker.logs().filter((line) => line.msg?.startsWith('reconciler:'))
      expect(passes.length).toBeGreaterThan(0)
      expect(passes[0]!.reconciled[QUEUES.orderConfirmation]).toBeGreaterThan(0)
      expect(worker.logs().some((line) => /scheduler missing/.test(line.msg) && line.scheduler === 'reconcile')).toBe(
        true,
      )
    } finally {
      worker.child.kill('SIGCONT')
    }
  })
})

describe('a reconciler pass', () => {
  test('leaves live jobs alone, hands a lost one over again, and marks finished work done', async () => {
    const prefix = `reconcile-pass-${process.pid}-${Date.now()}`
    const queues = queuesOn(prefix)
    const api = await startApi({ QUEUE_PREFIX: prefix })
    const orderIds = await placeOrders(api.base, 3)
    expect(await waitFor(() => allRelayed(orderIds), 20_000, 100)).toBe(true)
    await stopServices()
    const ours = () => sql`
      SELECT id, queue, job_id, done_at FROM outbox
      WHERE payload->'orderIds' @> ANY(${orderIds.map((id) => JSON.stringify([id]))}::jsonb[]) OR (payload->>'orderId')::int = ANY(${orderIds})
      ORDER BY id`
    const rows = await ours()
    expect(rows.length).toBeGreaterThan(0)
    // Old enough to count, with no worker on this prefix: every job is waiting, so nothing moves.
    const backdate = () =>
      sql`UPDATE outbox SET sent_at = now() - interval '1 hour' WHERE id IN ${sql(rows.map((row) => row.id))}`
    await backdate()
    const waitingBefore = await queues[QUEUES.orderConfirmation].getWaitingCount()
    expect(waitingBefore).toBeGreaterThan(0)
    expect((await reconcile(queues, 60, effectChecks))[QUEUES.orderConfirmation]).toBe(0)
    expect(await queues[QUEUES.orderConfirmation].getWaitingCount()).toBe(waitingBefore)

    // One job lost: its rows are handed over again under a new id; the others stay as they were.
    const lostJobId = rows[0]!.job_id as string
    await queues[QUEUES.orderConfirmation].remove(lostJobId)
    await backdate()
    const result = await reconcile(queues, 60, effectChecks)
    expect(result[QUEUES.orderConfirmation]).toBe(rows.filter((row) => row.job_id === lostJobId).length)
    const after = await ours()
    const moved = after.filter((row) => row.job_id !== rows.find((before) => before.id === row.id)!.job_id)
    expect(moved.map((row) => row.id)).toEqual(rows.filter((row) => row.job_id === lostJobId).map((row) => row.id))
    for (const row of moved) {
      expect(row.job_id).toStartWith(`${lostJobId}-r`)
      expect(await queues[QUEUES.orderConfirmation].getJobState(row.job_id)).toBe('waiting')
    }

    // Confirmed (by anyone): the rows are done, whatever their jobs' state.
    await sql`UPDATE orders SET status = 'confirmed' WHERE id = ANY(${orderIds})`
    await backdate()
    await reconcile(queues, 60, effectChecks)
    expect((await ours()).every((row) => row.done_at !== null)).toBe(true)
    await Promise.all(Object.values(queues).map((queue) => queue.obliterate({ force: true })))
  })

  test('rows whose payload no job could handle count as done, and do not stop the pass', async () => {
    const queues = queuesOn(`reconcile-malformed-${process.pid}-${Date.now()}`)
    const malformed = await sql<{ id: string }[]>`
      INSERT INTO outbox (queue, name, payload, sent_at) VALUES
        (${QUEUES.orderConfirmation}, ${JOB_NAMES.orderConfirmation}, '{"orderIds": {"not": "a list"}}', now() - interval '1 hour'),
        (${QUEUES.orderConfirmation}, ${JOB_NAMES.orderConfirmation}, '{"orderIds": ["x", 99999999999]}', now() - interval '1 hour'),
        (${QUEUES.audit}, ${JOB_NAMES.audit}, '{"entries": [1, "two"]}', now() - interval '1 hour'),
        (${QUEUES.orderNotification}, ${JOB_NAMES.orderNotification}, '{"orderId": "x", "kind": "shipped"}', now() - interval '1 hour'),
        (${QUEUES.webhooks}, ${JOB_NAMES.webhookDelivery}, '{"deliveryId": -1}', now() - interval '1 hour'),
        (${QUEUES.returnNotification}, ${JOB_NAMES.returnNotification}, '{"returnId": "x", "kind": "received"}', now() - interval '1 hour'),
        (${QUEUES.exports}, ${JOB_NAMES.exportBuild}, '{"exportId": [1]}', now() - interval '1 hour')
      RETURNING id`
    try {
      await reconcile(queues, 60, effectChecks)
      const rows = await sql`SELECT done_at FROM outbox WHERE id IN ${sql(malformed.map((row) => row.id))}`
      expect(rows.map((row) => row.done_at !== null)).toEqual([true, true, true, true, true, true, true])
    } finally {
      await sql`DELETE FROM outbox WHERE id IN ${sql(malformed.map((row) => row.id))}`
    }
  })

  test('a return notification and an export whose jobs are gone are handed over again until done', async () => {
    const queues = queuesOn(`reconcile-fulfilment-${process.pid}-${Date.now()}`)
    const { token, user } = await registerCustomer('reconcile-return')
    const product = await createProduct(admin.token, { inventory: 10 })
    const order = await call('POST', '/api/orders', {
      token,
      body: { items: [{ product_id: product.id, quantity: 1 }] },
    })
    await sql`UPDATE orders SET status = 'delivered', delivered_at = now() WHERE id = ${order.body.id}`
    const [returned] = await sql<{ id: number }[]>`
      INSERT INTO returns (order_id, user_id, status, refund_cents) VALUES (${order.body.id}, ${user.id}, 'received', 1000)
      RETURNING id`
    const [exported] = await sql<{ id: number }[]>`
      INSERT INTO exports (type, expires_at) VALUES ('orders', now() + interval '1 hour') RETURNING id`
    const rows = await sql<{ id: string }[]>`
      INSERT INTO outbox (queue, name, payload, sent_at, job_id) VALUES
        (${QUEUES.returnNotification}, ${JOB_NAMES.returnNotification},
          ${JSON.stringify({ returnId: returned!.id, kind: 'received' })}::jsonb, now() - interval '1 hour', 'outbox-gone-1'),
        (${QUEUES.exports}, ${JOB_NAMES.exportBuild}, ${JSON.stringify({ exportId: exported!.id })}::jsonb,
          now() - interval '1 hour', 'outbox-gone-2')
      RETURNING id`
    const backdate = () =>
      sql`UPDATE outbox SET sent_at = now() - interval '1 hour' WHERE id IN ${sql(rows.map((row) => row.id))}`
    try {
      const found = await reconcile(queues, 60, effectChecks)
      expect([found[QUEUES.returnNotification], found[QUEUES.exports]]).toEqual([1, 1])
      expect(await queues[QUEUES.returnNotification].getWaitingCount()).toBe(1)
      expect(await queues[QUEUES.exports].getWaitingCount()).toBe(1)
      // Their effects, done by anyone: the message sent, the export built.
      await sql`
        INSERT INTO notifications (dedupe_key, user_id, order_id, transport, recipient, subject, body, sent_at)
        VALUES (${`return-received:${returned!.id}`}, ${user.id}, ${order.body.id}, 'log', 'x@example.com', 's', 'b', now())`
      await sql`UPDATE exports SET status = 'done' WHERE id = ${exported!.id}`
      await backdate()
      await reconcile(queues, 60, effectChecks)
      const done = await sql`SELECT done_at FROM outbox WHERE id IN ${sql(rows.map((row) => row.id))}`
      expect(done.every((row) => row.done_at !== null)).toBe(true)
    } finally {
      await sql`DELETE FROM outbox WHERE id IN ${sql(rows.map((row) => row.id))}`
      await Promise.all(Object.values(queues).map((queue) => queue.obliterate({ force: true })))
    }
  })

  test('a webhook delivery whose job is spent while it is still pending is handed over again', async () => {
    const prefix = `reconcile-spent-${process.pid}-${Date.now()}`
    const queues = queuesOn(prefix)
    const api = await startApi({ QUEUE_PREFIX: prefix })
    const [orderId] = await placeOrders(api.base, 1)
    expect(await waitFor(() => allRelayed([orderId!]), 20_000, 100)).toBe(true)
    await stopServices()
    const [row] = await sql<{ id: string; job_id: string }[]>`
      SELECT o.id, o.job_id FROM outbox o JOIN webhook_deliveries d ON d.id = (o.payload->>'deliveryId')::int
      JOIN events e ON e.id = d.event_id WHERE e.order_id = ${orderId!} AND d.endpoint_id = ${endpointId}`
    // Its attempts spent on something other than the receiver (the database was down): the job
    // failed, the delivery row was never updated.
    const job = (await queues[QUEUES.webhooks].getJob(row!.job_id))!
    await job.remove()
    const spent = await queues[QUEUES.webhooks].add(JOB_NAMES.webhookDelivery, job.data, { jobId: row!.job_id })
    await connection
      .multi()
      .lrem(`${prefix}:${QUEUES.webhooks}:wait`, 0, spent.id!)
      .zadd(`${prefix}:${QUEUES.webhooks}:failed`, Date.now(), spent.id!)
      .exec()
    expect(await queues[QUEUES.webhooks].getJobState(row!.job_id)).toBe('failed')
    await sql`UPDATE outbox SET sent_at = now() - interval '1 hour' WHERE id = ${row!.id}`
    expect((await reconcile(queues, 60, effectChecks))[QUEUES.webhooks]).toBe(1)
    // Under the delivery's own job id: one job per delivery.
    const [moved] = await sql<{ job_id: string }[]>`SELECT job_id FROM outbox WHERE id = ${row!.id}`
    expect(moved!.job_id).toBe(row!.job_id)
    expect(await queues[QUEUES.webhooks].getJobState(moved!.job_id)).toBe('waiting')
    await Promise.all(Object.values(queues).map((queue) => queue.obliterate({ force: true })))
  })
})

test('the API and the worker warn at start-up when Redis may evict queued jobs', async () => {
  const port = freePort()
  spawnService([
    'redis-server',
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--maxmemory-policy',
    'allkeys-lru',
  ])
  const settings = { REDIS_URL: `redis://127.0.0.1:${port}`, QUEUE_PREFIX: `evicting-${process.pid}` }
  const warned = (service: { logs(): Record<string, any>[] }) =>
    service.logs().find((line) => line.maxmemoryPolicy === 'allkeys-lru' && /noeviction/.test(line.msg))
  const started = Date.now()
  while (Date.now() - started < 10_000) {
    try {
      await connectionTo(port)
      break
    } catch {
      await Bun.sleep(50)
    }
  }
  const api = await startApi(settings, { log: true })
  const worker = startWorker(settings, { log: true })
  expect(await waitFor(() => warned(api), 10_000, 50)).toMatchObject({ level: 40, source: 'api' })
  expect(await waitFor(() => warned(worker), 10_000, 50)).toMatchObject({ level: 40, source: 'worker' })
})

const connectionTo = (port: number) =>
  Bun.connect({ hostname: '127.0.0.1', port, socket: { data() {} } }).then((socket) => socket.end())
