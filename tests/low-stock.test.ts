import { beforeAll, describe, expect, test } from 'bun:test'
import { placeOrderBatch } from '../src/modules/orders/batch'
import { call, createAdmin, createProduct, expectError, inventoryOf, registerCustomer, sql } from './helpers'

// product.low_stock: one event (and one audit job) per crossing of a product's threshold, written
// by the change that crosses it, whatever the concurrency; re-armed only above the threshold.

let admin: { token: string; user: { id: number } }
let customer: { token: string; user: { id: number } }
beforeAll(async () => {
  admin = await createAdmin()
  customer = await registerCustomer('low-stock')
})

type Payload = { id: number; inventory: number; low_stock_threshold: number | null }
const lowStockEvents = (productId: number) =>
  sql<{ payload: Payload }[]>`
    SELECT payload FROM events WHERE type = 'product.low_stock' AND (payload->>'id')::int = ${productId} ORDER BY id`
const lowStockAudits = async (productId: number) =>
  (
    await sql<{ count: number }[]>`
      SELECT count(*)::int AS count FROM outbox
      WHERE queue = 'audit' AND payload->>'action' = 'product.low_stock' AND (payload->>'entityId')::int = ${productId}`
  )[0]!.count
const order = (productId: number, quantity: number) =>
  call('POST', '/api/orders', { token: customer.token, body: { items: [{ product_id: productId, quantity }] } })
const put = (productId: number, body: Record<string, unknown>) =>
  call('PUT', `/api/products/${productId}`, { token: admin.token, body })

describe('low_stock_threshold on products', () => {
  test('null by default; set on create and PUT, cleared with null, shown on the product', async () => {
    const plain = await createProduct(admin.token, { inventory: 5 })
    expect(plain.low_stock_threshold).toBeNull()
    const watched = await createProduct(admin.token, { inventory: 5, low_stock_threshold: 2 })
    expect(watched.low_stock_threshold).toBe(2)
    expect((await call('GET', `/api/products/${watched.id}`)).body.low_stock_threshold).toBe(2)
    expect((await put(watched.id, { low_stock_threshold: 0 })).body.low_stock_threshold).toBe(0)
    expect((await put(watched.id, { low_stock_threshold: null })).body.low_stock_threshold).toBeNull()
  })

  test.each([
    ['negative', -1],
    ['a fraction', 1.5],
    ['a string', '5'],
    ['past int4', 2_147_483_648],
    ['an object', { value: 1 }],
  ])('%s → 400 on create and PUT, nothing changes', async (_, threshold) => {
    const product = await createProduct(admin.token, { inventory: 5, low_stock_threshold: 3 })
    expectError(
      await call('POST', '/api/products', {
        token: admin.token,
        body: { name: 'x', price_cents: 1, low_stock_threshold: threshold },
      }),
      400,
    )
    expectError(await put(product.id, { low_stock_threshold: threshold }), 400)
    expect((await call('GET', `/api/products/${product.id}`)).body.low_stock_threshold).toBe(3)
  })

  test('a customer cannot set it (403)', async () => {
    const product = await createProduct(admin.token, { inventory: 5 })
    expectError(
      await call('PUT', `/api/products/${product.id}`, { token: customer.token, body: { low_stock_threshold: 1 } }),
      403,
    )
  })
})

describe('product.low_stock', () => {
  test('orders crossing the threshold write one event, whose data is the product as the API shows it', async () => {
    const product = await createProduct(admin.token, { inventory: 8, low_stock_threshold: 5 })
    expect((await order(product.id, 2)).status).toBe(201) // 8 → 6: above
    expect(await lowStockEvents(product.id)).toHaveLength(0)
    expect((await order(product.id, 1)).status).toBe(201) // 6 → 5: crosses
    expect((await order(product.id, 1)).status).toBe(201) // 5 → 4: already low
    const events = await lowStockEvents(product.id)
    expect(events).toHaveLength(1)
    expect(events[0]!.payload.inventory).toBe(5)
    const { body: shown } = await call('GET', `/api/products/${product.id}`)
    expect({ ...events[0]!.payload, inventory: 4, updated_at: shown.updated_at }).toEqual(shown)
    expect(await lowStockAudits(product.id)).toBe(1)
  })

  test('re-armed only when inventory rises above the threshold; cancels and restocks never fire it', async () => {
    const product = await createProduct(admin.token, { inventory: 6, low_stock_threshold: 5 })
    const first = await order(product.id, 2) // 6 → 4: crosses
    await put(product.id, { inventory: 5 }) // at the threshold: not above, not re-armed
    expect((await order(product.id, 1)).status).toBe(201) // 5 → 4: no crossing
    expect(await lowStockEvents(product.id)).toHaveLength(1)
    expect((await call('POST', `/api/orders/${first.body.id}/cancel`, { token: customer.token })).status).toBe(200) // 4 → 6
    expect(await lowStockEvents(product.id)).toHaveLength(1)
    expect((await order(product.id, 3)).status).toBe(201) // 6 → 3: crosses again
    expect(await lowStockEvents(product.id)).toHaveLength(2)
    await put(product.id, { inventory: 100 })
    expect((await order(product.id, 95)).status).toBe(201) // 100 → 5: crosses again
    expect((await lowStockEvents(product.id)).map((event) => event.payload.inventory)).toEqual([4, 3, 5])
    expect(await lowStockAudits(product.id)).toBe(3)
  })

  test('an admin PUT that takes inventory across fires it (with the admin as the actor); one that stays below does not', async () => {
    const product = await createProduct(admin.token, { inventory: 50, low_stock_threshold: 10 })
    await put(product.id, { inventory: 11 })
    expect(await lowStockEvents(product.id)).toHaveLength(0)
    await put(product.id, { inventory: 10 })
    await put(product.id, { inventory: 3 })
    const events = await lowStockEvents(product.id)
    expect(events.map((event) => event.payload.inventory)).toEqual([10])
    const [audit] = await sql<{ actor: number }[]>`
      SELECT (payload->>'actorId')::int AS actor FROM outbox
      WHERE payload->>'action' = 'product.low_stock' AND (payload->>'entityId')::int = ${product.id}`
    expect(audit!.actor).toBe(admin.user.id)
    // Setting a threshold above today's inventory changes no inventory: no crossing.
    const other = await createProduct(admin.token, { inventory: 4 })
    await put(other.id, { low_stock_threshold: 10 })
    expect(await lowStockEvents(other.id)).toHaveLength(0)
  })

  test('one batch of orders that crosses it once gives one event', async () => {
    const product = await createProduct(admin.token, { inventory: 20, low_stock_threshold: 10 })
    const outcomes = await placeOrderBatch(
      Array.from({ length: 8 }, () => ({ userId: customer.user.id, productIds: [product.id], quantities: [2] })),
    )
    expect(outcomes.every((outcome) => outcome.kind === 'placed')).toBe(true)
    expect(await inventoryOf(product.id)).toBe(4)
    const events = await lowStockEvents(product.id)
    expect(events.map((event) => event.payload.inventory)).toEqual([4])
    expect(await lowStockAudits(product.id)).toBe(1)
  })

  test('many concurrent orders crossing it: exactly one event, stock conserved, no 5xx', async () => {
    const product = await createProduct(admin.token, { inventory: 100, low_stock_threshold: 40 })
    const replies = await Promise.all(Array.from({ length: 120 }, () => order(product.id, 1)))
    expect(replies.filter((reply) => reply.status >= 500)).toHaveLength(0)
    const placed = replies.filter((reply) => reply.status === 201).length
    expect(placed).toBe(100)
    expect(replies.filter((reply) => reply.status === 409)).toHaveLength(20)
    expect(await inventoryOf(product.id)).toBe(0)
    const events = await lowStockEvents(product.id)
    expect(events).toHaveLength(1)
    expect(events[0]!.payload.inventory).toBeLessThanOrEqual(40)
    expect(await lowStockAudits(product.id)).toBe(1)
  })

  test('concurrent orders and admin PUTs: one event per crossing, never two for one', async () => {
    const product = await createProduct(admin.token, { inventory: 30, low_stock_threshold: 10 })
    await Promise.all([
      ...Array.from({ length: 30 }, () => order(product.id, 1)),
      put(product.id, { inventory: 30 }),
      put(product.id, { inventory: 30 }),
    ])
    // Each event is a crossing from above: between two events inventory went back above 10.
    const events = await lowStockEvents(product.id)
    expect(events.length).toBeGreaterThanOrEqual(1)
    expect(events.length).toBeLessThanOrEqual(3)
    for (const event of events) expect(event.payload.inventory).toBeLessThanOrEqual(10)
  })
})
