import { afterEach, beforeAll, describe, expect, test } from 'bun:test'
import type { Subprocess } from 'bun'
import { Queue } from 'bullmq'
import { QUEUES } from '../src/outbox/definitions'
import { createProducerConnection } from '../src/lib/redis'
import { countWhere, createAdmin, createProduct, freePort, outboxCoverage, sql, waitFor } from './helpers'
import { startApi, startRedis, startWorker, stopServices } from './processes'

// The API and the worker as separate processes, the way they run in production, with a
// private redis-server this file can stop and start. Each test's jobs must reach its own worker:
// processes of an earlier test would relay its outbox rows onto their prefix (see processes.ts),
// so every test stops what it started.

async function apiCall(base: string, method: string, path: string, token?: string, body?: unknown) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return { status: response.status, body: (await response.json().catch(() => undefined)) as any }
}

async function customerToken(base: string) {
  const email = `resilience-${Date.now()}-${Math.random().toString(36).slice(2)}@example.com`
  const reply = await apiCall(base, 'POST', '/api/auth/register', undefined, { email, password: 'password123' })
  expect(reply.status).toBe(201)
  return reply.body.token as string
}

const orderEffects = async (ids: number[]) => ({
  confirmed: await countWhere(
    sql`SELECT count(*)::int AS count FROM orders WHERE id = ANY(${ids}) AND status = 'confirmed'`,
  ),
  notifications: await countWhere(sql`SELECT count(*)::int AS count FROM notifications WHERE order_id = ANY(${ids})`),
  audits: await countWhere(
    sql`SELECT count(*)::int AS count FROM audit_logs WHERE entity = 'order' AND action = 'order.placed' AND entity_id = ANY(${ids})`,
  ),
})

/**
 * The worker started with this application name (postgres.js reads PGAPPNAME) is inside the
 * confirmation transaction, waiting for the order row. Matching on the name, not only the
 * query, keeps other tests' workers and sessions out of it.
 */
async function isBlockedOnStatusUpdate(applicationName: string) {
  const [row] = await sql`
    SELECT count(*)::int AS count FROM pg_stat_activity
    WHERE application_name = ${applicationName} AND wait_event_type = 'Lock'
      AND query ~ 'INSERT INTO "?order_status_history'`
  return row!.count > 0
}

/**
 * Runs `during` while a transaction of this file holds the order's row lock, so that a
 * confirmation blocks halfway: notification inserted, status not yet. (NO KEY UPDATE lets the
 * notification's foreign-key check through and stops the status update.) The lock is released
 * however `during` ends: left open, it would hold back the snapshot horizon for later files.
 */
async function holdingOrderRow(orderId: number, during: () => Promise<void>) {
  const blocker = await sql.reserve()
  try {
    await blocker`BEGIN`
    await blocker`SELECT id FROM orders WHERE id = ${orderId} FOR NO KEY UPDATE`
    await during()
  } finally {
    await blocker`ROLLBACK`.catch(() => {})
    blocker.release()
  }
}

let adminToken: string

beforeAll(async () => {
  adminToken = (await createAdmin()).token
})

afterEach(stopServices)

describe('a Redis outage delays jobs, never drops them', () => {
  test('with Redis down 20 orders still return 201; once it is back every order’s confirmation and audit run', async () => {
    const redisPort = freePort()
    const prefix = `outage-${process.pid}-${Date.now()}`
    const redisUrl = `redis://127.0.0.1:${redisPort}`
    let redis = startRedis(redisPort)
    expect(
      await waitFor(() =>
        Bun.connect({ hostname: '127.0.0.1', port: redisPort, socket: { data() {} } }).then(
          (socket) => {
            socket.end()
            return true
          },
          () => false,
        ),
      ),
    ).toBe(true)
    const api = await startApi({ REDIS_URL: redisUrl, QUEUE_PREFIX: prefix })
    const base = api.base
    const token = await customerToken(base)
    const product = await createProduct(adminToken, { inventory: 100 })

    redis.child.kill('SIGKILL')
    await redis.child.exited
    const ready = await apiCall(base, 'GET', '/health/ready')
    expect(ready.status).toBe(503)
    expect(ready.body.checks.redis.status).toBe('error')
    expect(ready.body.checks.postgres.status).toBe('ok')

    const replies = await Promise.all(
      Array.from({ length: 20 }, () =>
        apiCall(base, 'POST', '/api/orders', token, { items: [{ product_id: product.id, quantity: 1 }] }),
      ),
    )
    expect(replies.map((reply) => reply.status)).toEqual(Array(20).fill(201))
    const ids = replies.map((reply) => reply.body.id as number)
    expect(await outboxCoverage(ids, true)).toEqual({ confirmations: 20, audits: 20 })
    expect(api.child.exitCode).toBeNull()

    redis = startRedis(redisPort)
    startWorker({ REDIS_URL: redisUrl, QUEUE_PREFIX: prefix })
    const done = await waitFor(
      async () => {
        const effects = await orderEffects(ids)
        return effects.confirmed === 20 && effects.audits === 20 ? effects : undefined
      },
      40_000,
      200,
    )
    expect(done).toEqual({ confirmed: 20, notifications: 20, audits: 20 })
  })
})

describe('a worker killed in the middle of a job loses nothing', () => {
  test('SIGKILL while the confirmation is half done: a new worker runs it, exactly once in effect', async () => {
    const prefix = `killed-${process.pid}-${Date.now()}`
    const { base } = await startApi({ QUEUE_PREFIX: prefix })
    const token = await customerToken(base)
    const product = await createProduct(adminToken, { inventory: 10 })
    const order = await apiCall(base, 'POST', '/api/orders', token, {
      items: [{ product_id: product.id, quantity: 1 }],
    })
    expect(order.status).toBe(201)
    const orderId = order.body.id as number

    const lockMs = '1500'
    await holdingOrderRow(orderId, async () => {
      const first = startWorker({ QUEUE_PREFIX: prefix, WORKER_LOCK_DURATION_MS: lockMs, PGAPPNAME: prefix }).child
      expect(await waitFor(() => isBlockedOnStatusUpdate(prefix))).toBe(true)
      first.kill('SIGKILL')
      await first.exited
    })

    const queue = new Queue(QUEUES.orderConfirmation, {
      connection: createProducerConnection(process.env.REDIS_URL),
      prefix,
    })
    try {
      startWorker({ QUEUE_PREFIX: prefix, WORKER_LOCK_DURATION_MS: lockMs })
      const done = await waitFor(
        async () => {
          const effects = await orderEffects([orderId])
          return effects.confirmed === 1 && effects.audits === 1 ? effects : undefined
        },
        40_000,
        200,
      )
      expect(done).toEqual({ confirmed: 1, notifications: 1, audits: 1 })
      expect(await waitFor(async () => (await queue.getJobCounts('completed')).completed === 1)).toBe(true)
      expect((await queue.getJobCounts('failed')).failed).toBe(0)
    } finally {
      await queue.close()
    }
  })

  test('SIGTERM: the worker finishes its active job, then exits 0', async () => {
    const prefix = `sigterm-${process.pid}-${Date.now()}`
    const { base } = await startApi({ QUEUE_PREFIX: prefix })
    const token = await customerToken(base)
    const product = await createProduct(adminToken, { inventory: 10 })
    const order = await apiCall(base, 'POST', '/api/orders', token, {
      items: [{ product_id: product.id, quantity: 1 }],
    })
    expect(order.status).toBe(201)
    const orderId = order.body.id as number

    let worker!: Subprocess
    await holdingOrderRow(orderId, async () => {
      worker = startWorker({ QUEUE_PREFIX: prefix, PGAPPNAME: prefix }).child
      expect(await waitFor(() => isBlockedOnStatusUpdate(prefix))).toBe(true)
      worker.kill('SIGTERM')
      await Bun.sleep(500)
      expect(worker.exitCode).toBeNull() // still finishing the job it holds
    })
    expect(await worker.exited).toBe(0)
    expect((await orderEffects([orderId])).confirmed).toBe(1)
  })
})
