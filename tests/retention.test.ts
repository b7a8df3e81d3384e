import { afterAll, afterEach, describe, expect, test } from 'bun:test'
import { Queue } from 'bullmq'
import { deleteBenchQueueKeys } from '../bench/queue-keys'
import { config } from '../src/config'
import { JOB_NAMES, QUEUES } from '../src/outbox/definitions'
import { deleteEndedSessions } from '../src/modules/auth/sessions'
import { deleteOldProductChanges } from '../src/modules/products/queries'
import { createProducerConnection } from '../src/lib/redis'
import { call, registerCustomer, sql, waitFor } from './helpers'
import { startApi, startWorker, stopServices } from './processes'

// The retention rules of docs/retention.md that other files do not already prove.

const connection = createProducerConnection(process.env.REDIS_URL)
afterEach(stopServices)
afterAll(() => connection.disconnect())

describe('failed jobs', () => {
  test('stay for operators, at most FAILED_JOB_RETENTION_COUNT per queue and FAILED_JOB_RETENTION_DAYS long', async () => {
    const prefix = `retention-${process.pid}-${Date.now()}`
    const queue = new Queue(QUEUES.orderNotification, { connection, prefix })
    // Four jobs that fail for good (a payload no worker accepts), relayed by an API that keeps two.
    const rows = await sql<{ id: string }[]>`
      INSERT INTO outbox (queue, name, payload)
      SELECT ${QUEUES.orderNotification}, ${JOB_NAMES.orderNotification}, jsonb_build_object('orderId', 'x' || n, 'kind', 'shipped')
      FROM generate_series(1, 4) AS n RETURNING id`
    try {
      await startApi({ QUEUE_PREFIX: prefix, FAILED_JOB_RETENTION_COUNT: '2', FAILED_JOB_RETENTION_DAYS: '3' })
      const relayed = await waitFor(
        async () =>
          (
            await sql`SELECT count(*)::int AS n FROM outbox WHERE id IN ${sql(rows.map((r) => r.id))} AND sent_at IS NOT NULL`
          )[0]!.n === 4,
      )
      expect(relayed).toBe(true)
      startWorker({ QUEUE_PREFIX: prefix })
      const settled = await waitFor(async () => {
        const { waiting = 0, active = 0, failed = 0 } = await queue.getJobCounts('waiting', 'active', 'failed')
        return waiting + active === 0 && failed > 0 ? { waiting, active, failed } : undefined
      })
      expect(settled).toEqual({ waiting: 0, active: 0, failed: 2 })
      const [kept] = await queue.getFailed()
      expect(kept!.failedReason).toMatch(/Invalid order-notification payload/)
      expect(kept!.opts.removeOnFail).toEqual({ age: 3 * 24 * 3600, count: 2 })
    } finally {
      await sql`DELETE FROM outbox WHERE id IN ${sql(rows.map((r) => r.id))}`
      await queue.obliterate({ force: true })
      await queue.close()
    }
  })

  test('the defaults: 30 days and 10 000 per queue', () => {
    expect([config.FAILED_JOB_RETENTION_DAYS, config.FAILED_JOB_RETENTION_COUNT]).toEqual([30, 10_000])
  })
})

test('sessions ended (expired or revoked) over a week ago are deleted with their refresh tokens; others stay', async () => {
  const [old, recent, live] = [await registerCustomer(), await registerCustomer(), await registerCustomer()]
  const sessionOf = async (userId: number) =>
    (await sql<{ id: number }[]>`SELECT id FROM sessions WHERE user_id = ${userId}`)[0]!.id
  const [oldId, recentId, liveId] = (await Promise.all([old, recent, live].map((u) => sessionOf(u.user.id)))) as [
    number,
    number,
    number,
  ]
  await sql`UPDATE sessions SET revoked_at = now() - interval '8 days' WHERE id = ${oldId}`
  await sql`UPDATE sessions SET revoked_at = now() - interval '6 days' WHERE id = ${recentId}`
  expect(await deleteEndedSessions()).toBeGreaterThanOrEqual(1)
  const left = await sql<{ id: number }[]>`SELECT id FROM sessions WHERE id IN ${sql([oldId, recentId, liveId])}`
  expect(left.map((row) => row.id).sort()).toEqual([recentId, liveId].sort())
  expect((await sql`SELECT count(*)::int AS n FROM refresh_tokens WHERE session_id = ${oldId}`)[0]!.n).toBe(0)
})

test('the catalogue change feed keeps PRODUCT_CHANGES_RETENTION_MINUTES of rows; older ones go with housekeeping', async () => {
  const [product] = await sql<{ id: number }[]>`
    INSERT INTO products (name, price_cents, inventory) VALUES (${`Feed ${process.pid}`}, 100, 1) RETURNING id`
  const rows = () =>
    sql<
      { age: string }[]
    >`SELECT (now() - changed_at)::text AS age FROM product_changes WHERE product_id = ${product!.id}`
  // The insert wrote one row; age one of two by hand, then keep what is younger than 15 minutes.
  await sql`UPDATE products SET inventory = 2 WHERE id = ${product!.id}`
  expect(await rows()).toHaveLength(2)
  await sql`
    UPDATE product_changes SET changed_at = now() - interval '16 minutes'
    WHERE ctid = (SELECT ctid FROM product_changes WHERE product_id = ${product!.id} LIMIT 1)`
  expect(config.PRODUCT_CHANGES_RETENTION_MINUTES).toBe(15)
  expect(await deleteOldProductChanges(config.PRODUCT_CHANGES_RETENTION_MINUTES)).toBeGreaterThanOrEqual(1)
  expect(await rows()).toHaveLength(1)
})

test('rate-limit counters in Redis expire with their window', async () => {
  await call('POST', '/api/auth/login', {
    body: { email: `nobody-${Date.now()}@example.com`, password: 'wrong-password' },
  })
  const keys = await connection.keys(`${config.QUEUE_PREFIX}:rate-limit:*`)
  expect(keys.length).toBeGreaterThan(0)
  for (const key of keys) {
    const ttl = await connection.pttl(key)
    expect(ttl).toBeGreaterThan(0)
    expect(ttl).toBeLessThanOrEqual(config.RATE_LIMIT_AUTH_WINDOW_SECONDS * 1000)
  }
})

test('make bench deletes its own queues and those of runs that were killed, never a live run’s', async () => {
  const gone = Bun.spawn(['true'])
  await gone.exited
  const [own, dead, alive] = [`bench-${gone.pid}:q:1`, `bench-999999999:q:1`, `bench-${process.pid}:q:1`]
  await connection.mset(own, '1', dead, '1', alive, '1')
  try {
    expect(await deleteBenchQueueKeys(process.env.REDIS_URL!, gone.pid)).toBeGreaterThanOrEqual(2)
    expect(await connection.exists(own, dead, alive)).toBe(1)
    expect(await connection.exists(alive)).toBe(1)
  } finally {
    await connection.del(own, dead, alive)
  }
})
