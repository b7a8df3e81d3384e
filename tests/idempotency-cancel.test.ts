import { beforeAll, describe, expect, test } from 'bun:test'
import { deleteExpiredIdempotencyKeys } from '../src/modules/orders/place'
import {
  call,
  countRows,
  countWhere,
  type Account,
  createProduct,
  expectError,
  inventoryOf,
  shopWith,
  sql,
  outboxItems,
} from './helpers'

let admin: Account
let alice: Account
let bob: Account

beforeAll(async () => {
  ;({ admin, alice, bob } = await shopWith('alice', 'bob'))
})

let keyCounter = 0
const newKey = () => `key-${process.pid}-${Date.now()}-${++keyCounter}`
const order = (token: string, items: unknown, key?: string) =>
  call('POST', '/api/orders', { token, body: { items }, headers: key ? { 'idempotency-key': key } : {} })
const ordersOf = (userId: number) =>
  countWhere(sql`SELECT count(*)::int AS count FROM orders WHERE user_id = ${userId}`)

describe('Idempotency-Key on POST /api/orders', () => {
  test('a repeat with the same key and body returns the original response and takes no stock', async () => {
    const product = await createProduct(admin.token, { inventory: 10 })
    const key = newKey()
    const items = [{ product_id: product.id, quantity: 3 }]
    const first = await order(alice.token, items, key)
    expect(first.status).toBe(201)
    expect(first.headers.get('idempotent-replayed')).toBeNull()
    const before = await ordersOf(alice.user.id)
    const again = await order(alice.token, items, key)
    expect(again.status).toBe(201)
    expect(again.body).toEqual(first.body)
    expect(again.headers.get('idempotent-replayed')).toBe('true')
    expect(await inventoryOf(product.id)).toBe(7)
    expect(await ordersOf(alice.user.id)).toBe(before)
  })

  test('the same key with a different body → 422, nothing taken', async () => {
    const product = await createProduct(admin.token, { inventory: 10 })
    const key = newKey()
    expect((await order(alice.token, [{ product_id: product.id, quantity: 1 }], key)).status).toBe(201)
    expectError(await order(alice.token, [{ product_id: product.id, quantity: 2 }], key), 422, /different/)
    expect(await inventoryOf(product.id)).toBe(9)
  })

  test('keys are scoped to the user: another user with the same key places their own order', async () => {
    const product = await createProduct(admin.token, { inventory: 10 })
    const key = newKey()
    const items = [{ product_id: product.id, quantity: 1 }]
    const mine = await order(alice.token, items, key)
    const theirs = await order(bob.token, items, key)
    expect(theirs.status).toBe(201)
    expect(theirs.body.id).not.toBe(mine.body.id)
    expect(theirs.body.user_id).toBe(bob.user.id)
    expect(await inventoryOf(product.id)).toBe(8)
  })

  test('a failed order stores no outcome: the same key can be retried once stock is back', async () => {
    const product = await createProduct(admin.token, { inventory: 1 })
    const key = newKey()
    const items = [{ product_id: product.id, quantity: 2 }]
    expectError(await order(alice.token, items, key), 409)
    await call('PUT', `/api/products/${product.id}`, { token: admin.token, body: { inventory: 5 } })
    const retried = await order(alice.token, items, key)
    expect(retried.status).toBe(201)
    expect(await inventoryOf(product.id)).toBe(3)
  })

  test('a key older than 24 h is forgotten: the same key places a new order', async () => {
    const product = await createProduct(admin.token, { inventory: 10 })
    const key = newKey()
    const items = [{ product_id: product.id, quantity: 1 }]
    const first = await order(alice.token, items, key)
    await sql`UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = ${key}`
    const second = await order(alice.token, items, key)
    expect(second.status).toBe(201)
    expect(second.body.id).not.toBe(first.body.id)
    expect(await inventoryOf(product.id)).toBe(8)
  })

  test('the periodic clean-up deletes expired keys only', async () => {
    const product = await createProduct(admin.token, { inventory: 10 })
    const [fresh, stale] = [newKey(), newKey()]
    await order(alice.token, [{ product_id: product.id, quantity: 1 }], fresh)
    await order(alice.token, [{ product_id: product.id, quantity: 1 }], stale)
    await sql`UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = ${stale}`
    expect(await deleteExpiredIdempotencyKeys()).toBeGreaterThanOrEqual(1)
    const left = await sql`SELECT key FROM idempotency_keys WHERE key IN ${sql([fresh, stale])}`
    expect(left.map((row) => row.key)).toEqual([fresh])
  })

  test.each([
    ['empty', ''],
    ['256 characters', 'k'.repeat(256)],
  ])('an Idempotency-Key that is %s → 400', async (_case, key) => {
    const before = await countRows('orders')
    const reply = await call('POST', '/api/orders', {
      token: alice.token,
      body: { items: [{ product_id: 1, quantity: 1 }] },
      headers: { 'idempotency-key': key },
    })
    expectError(reply, 400)
    expect(await countRows('orders')).toBe(before)
  })

  test('50 concurrent identical requests with one key → one order, one decrement, the same answer for all', async () => {
    const product = await createProduct(admin.token, { inventory: 100 })
    const key = newKey()
    const items = [{ product_id: product.id, quantity: 2 }]
    const before = await ordersOf(alice.user.id)
    const replies = await Promise.all(Array.from({ length: 50 }, () => order(alice.token, items, key)))
    const statuses = replies.map((reply) => reply.status)
    // The contract allows a 409 for a duplicate still in flight; this service waits and replays instead.
    expect(statuses).toEqual(Array(50).fill(201))
    const ids = new Set(replies.filter((reply) => reply.status === 201).map((reply) => reply.body.id))
    expect(ids.size).toBe(1)
    expect(await ordersOf(alice.user.id)).toBe(before + 1)
    expect(await inventoryOf(product.id)).toBe(98)
  })
})

describe('POST /api/orders/:id/cancel', () => {
  test('the owner cancels a pending order: 200 cancelled, units back in stock', async () => {
    const first = await createProduct(admin.token, { inventory: 10 })
    const second = await createProduct(admin.token, { inventory: 10 })
    const placed = await order(alice.token, [
      { product_id: first.id, quantity: 3 },
      { product_id: second.id, quantity: 4 },
    ])
    const reply = await call('POST', `/api/orders/${placed.body.id}/cancel`, { token: alice.token })
    expect(reply.status).toBe(200)
    expect(reply.body).toMatchObject({ id: placed.body.id, status: 'cancelled', items: placed.body.items })
    expect(await inventoryOf(first.id)).toBe(10)
    expect(await inventoryOf(second.id)).toBe(10)
  })

  test('a cancellable order always cancels, even after an admin restocked to the largest inventory', async () => {
    const max = 2_147_483_647
    const product = await createProduct(admin.token, { inventory: max })
    const placed = await order(alice.token, [{ product_id: product.id, quantity: 5 }])
    expect(placed.status).toBe(201)
    const restocked = await call('PUT', `/api/products/${product.id}`, { token: admin.token, body: { inventory: max } })
    expect(restocked.status).toBe(200)
    const reply = await call('POST', `/api/orders/${placed.body.id}/cancel`, { token: alice.token })
    expect(reply.status).toBe(200)
    expect(await inventoryOf(product.id)).toBe(max + 5)
    expect((await call('GET', `/api/products/${product.id}`)).body.inventory).toBe(max + 5)
    // Above what an admin may set, orders still take from it.
    expect((await order(alice.token, [{ product_id: product.id, quantity: 1000 }])).status).toBe(201)
    expect(await inventoryOf(product.id)).toBe(max + 5 - 1000)
  })

  test('a confirmed order can be cancelled; cancelling again → 409 with no second restock', async () => {
    const product = await createProduct(admin.token, { inventory: 10 })
    const placed = await order(alice.token, [{ product_id: product.id, quantity: 5 }])
    await sql`UPDATE orders SET status = 'confirmed' WHERE id = ${placed.body.id}`
    expect((await call('POST', `/api/orders/${placed.body.id}/cancel`, { token: alice.token })).status).toBe(200)
    expectError(
      await call('POST', `/api/orders/${placed.body.id}/cancel`, { token: alice.token }),
      409,
      /already cancelled/,
    )
    expect(await inventoryOf(product.id)).toBe(10)
  })

  test('an admin can cancel anyone’s order; another customer gets 404; no token 401', async () => {
    const product = await createProduct(admin.token, { inventory: 10 })
    const placed = await order(alice.token, [{ product_id: product.id, quantity: 2 }])
    expectError(await call('POST', `/api/orders/${placed.body.id}/cancel`, { token: bob.token }), 404)
    expectError(await call('POST', `/api/orders/${placed.body.id}/cancel`), 401)
    expect(await inventoryOf(product.id)).toBe(8)
    const reply = await call('POST', `/api/orders/${placed.body.id}/cancel`, { token: admin.token })
    expect(reply.status).toBe(200)
    expect(await inventoryOf(product.id)).toBe(10)
  })

  test('unknown or malformed ids → 404 / 400', async () => {
    expectError(await call('POST', '/api/orders/2147483647/cancel', { token: alice.token }), 404)
    expectError(await call('POST', '/api/orders/abc/cancel', { token: alice.token }), 400)
  })

  test('a cancellation is audited through the outbox', async () => {
    const product = await createProduct(admin.token, { inventory: 10 })
    const placed = await order(alice.token, [{ product_id: product.id, quantity: 1 }])
    await call('POST', `/api/orders/${placed.body.id}/cancel`, { token: alice.token })
    const [job] =
      await sql`SELECT payload FROM ${outboxItems} WHERE queue = 'audit' AND payload->>'action' = 'order.cancelled' AND (payload->>'entityId')::int = ${placed.body.id}`
    expect(job!.payload).toMatchObject({
      actorId: alice.user.id,
      entity: 'order',
      details: { restocked: [{ productId: product.id, quantity: 1 }] },
    })
  })

  test('20 concurrent cancels of one order: one 200, the rest 409, one restock', async () => {
    const product = await createProduct(admin.token, { inventory: 10 })
    const placed = await order(alice.token, [{ product_id: product.id, quantity: 6 }])
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        call('POST', `/api/orders/${placed.body.id}/cancel`, { token: i % 2 ? alice.token : admin.token }),
      ),
    )
    const statuses = replies.map((reply) => reply.status).sort()
    expect(statuses).toEqual([200, ...Array(19).fill(409)])
    expect(await inventoryOf(product.id)).toBe(10)
  })

  test('cancels and new orders racing over the same products: no 5xx, units conserved', async () => {
    const first = await createProduct(admin.token, { inventory: 60 })
    const second = await createProduct(admin.token, { inventory: 60 })
    const lines = [
      { product_id: first.id, quantity: 1 },
      { product_id: second.id, quantity: 2 },
    ]
    const placed = await Promise.all(Array.from({ length: 20 }, () => order(alice.token, lines)))
    const racing = await Promise.all([
      ...placed.map((reply) => call('POST', `/api/orders/${reply.body.id}/cancel`, { token: alice.token })),
      ...Array.from({ length: 40 }, (_, i) => order(bob.token, i % 2 ? lines : [...lines].reverse())),
    ])
    expect(racing.filter((reply) => reply.status >= 500)).toEqual([])
    for (const product of [first, second]) {
      const [row] = await sql`
        SELECT coalesce(sum(i.quantity), 0)::int AS held FROM order_items i JOIN orders o ON o.id = i.order_id
        WHERE i.product_id = ${product.id} AND o.status <> 'cancelled'`
      expect((await inventoryOf(product.id)) + row!.held).toBe(60)
      expect(await inventoryOf(product.id)).toBeGreaterThanOrEqual(0)
    }
  })
})
