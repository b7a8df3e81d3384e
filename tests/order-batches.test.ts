import { beforeAll, describe, expect, test } from 'bun:test'
import { type OrderOutcome, type OrderRequest, placeOrderBatch } from '../src/modules/orders/batch'
import { OrderCombiner } from '../src/modules/orders/combine'
import { placeSingleOrder } from '../src/modules/orders/place'
import { call, createAdmin, createProduct, inventoryOf, outboxCoverage, registerCustomer, sql } from './helpers'

// Orders placed together: each batch must behave exactly as its orders placed one by one, in
// arrival order.

let adminToken: string
let userId: number
let otherUserId: number

beforeAll(async () => {
  adminToken = (await createAdmin()).token
  userId = (await registerCustomer('batch')).user.id
  otherUserId = (await registerCustomer('batch-other')).user.id
})

const order = (productIds: number[], quantities: number[], extra: Partial<OrderRequest> = {}): OrderRequest => ({
  userId,
  productIds,
  quantities,
  ...extra,
})
const kinds = (outcomes: OrderOutcome[]) =>
  outcomes.map((outcome) =>
    outcome.kind === 'placed' || outcome.kind === 'replayed'
      ? outcome.kind
      : `${outcome.kind} ${outcome.error.status} ${outcome.error.message}`,
  )
const ordersOfProduct = async (productId: number) =>
  (await sql`SELECT count(DISTINCT order_id)::int AS count FROM order_items WHERE product_id = ${productId}`)[0]!.count

describe('one batch, mixed outcomes', () => {
  test('stock goes in arrival order; every refusal is per order and changes nothing', async () => {
    const scarce = await createProduct(adminToken, { inventory: 3 })
    const plenty = await createProduct(adminToken, { inventory: 100 })
    const inactive = await createProduct(adminToken, { inventory: 100, is_active: false })
    const outcomes = await placeOrderBatch([
      order([scarce.id], [2]),
      order([scarce.id], [2]), // only 1 left: refused
      order([scarce.id], [1]), // takes the last one
      order([2_147_483_000], [1]),
      order([inactive.id], [1]),
      order([plenty.id, scarce.id], [5, 1]), // the scarce line fails: the plenty line is not taken either
      order([plenty.id], [7]),
    ])
    expect(kinds(outcomes)).toEqual([
      'placed',
      `rejected 409 Insufficient inventory for product ${scarce.id}`,
      'placed',
      'rejected 404 Product 2147483000 not found',
      `rejected 409 Product ${inactive.id} is not active`,
      `rejected 409 Insufficient inventory for product ${scarce.id}`,
      'placed',
    ])
    expect(await inventoryOf(scarce.id)).toBe(0)
    expect(await inventoryOf(plenty.id)).toBe(93)
    expect(await inventoryOf(inactive.id)).toBe(100)
    expect(await ordersOfProduct(scarce.id)).toBe(2)
    const placed = outcomes.flatMap((outcome) => (outcome.kind === 'placed' ? [outcome.order] : []))
    expect(placed.map((o) => o.total_cents)).toEqual([
      2 * scarce.price_cents,
      scarce.price_cents,
      7 * plenty.price_cents,
    ])
    // What the client was told is what was stored, jobs included.
    for (const o of placed) {
      const [row] = await sql`SELECT user_id, status, total_cents::int AS total FROM orders WHERE id = ${o.id}`
      expect(row).toEqual({ user_id: userId, status: 'pending', total: o.total_cents })
    }
    // One confirmation and one audit for each placed order, none for the refused ones.
    expect(await outboxCoverage(placed.map((o) => o.id))).toEqual({ confirmations: 3, audits: 3 })
    const [batchRows] = await sql`
      SELECT count(*)::int AS count FROM outbox WHERE payload->'orderIds' @> ${JSON.stringify([placed[0]!.id])}::jsonb`
    expect(batchRows!.count).toBe(1)
  })
})

describe('Idempotency-Key inside a batch', () => {
  test('a duplicate in the same batch gets the first one’s order; another body → 422; other keys are independent', async () => {
    const product = await createProduct(adminToken, { inventory: 10 })
    const key = `batch-key-${Date.now()}`
    const outcomes = await placeOrderBatch([
      order([product.id], [1], { idempotencyKey: key, requestHash: 'body-a' }),
      order([product.id], [1], { idempotencyKey: key, requestHash: 'body-a' }),
      order([product.id], [2], { idempotencyKey: key, requestHash: 'body-b' }),
      order([product.id], [1], { idempotencyKey: `${key}-other`, requestHash: 'body-a' }),
      order([product.id], [1], { idempotencyKey: key, requestHash: 'body-a', userId: otherUserId }),
    ])
    expect(kinds(outcomes)).toEqual([
      'placed',
      'replayed',
      'key-reused 422 This Idempotency-Key was already used with a different request body',
      'placed',
      'placed',
    ])
    const first = outcomes[0] as Extract<OrderOutcome, { kind: 'placed' }>
    expect((outcomes[1] as Extract<OrderOutcome, { kind: 'replayed' }>).order.id).toBe(first.order.id)
    expect(await inventoryOf(product.id)).toBe(7)

    // A later batch replays the stored answer.
    const later = await placeOrderBatch([order([product.id], [1], { idempotencyKey: key, requestHash: 'body-a' })])
    expect(later[0]).toEqual({ kind: 'replayed', status: 201, order: first.order })
    expect(await inventoryOf(product.id)).toBe(7)
  })

  test('a refused keyed order releases its key: the same key later is a new attempt', async () => {
    const product = await createProduct(adminToken, { inventory: 1 })
    const key = `batch-refused-${Date.now()}`
    const refused = await placeOrderBatch([
      order([product.id], [1]),
      order([product.id], [1], { idempotencyKey: key, requestHash: 'h' }),
    ])
    expect(kinds(refused)).toEqual(['placed', `rejected 409 Insufficient inventory for product ${product.id}`])
    expect((await sql`SELECT count(*)::int AS count FROM idempotency_keys WHERE key = ${key}`)[0]!.count).toBe(0)
    await call('PUT', `/api/products/${product.id}`, { token: adminToken, body: { inventory: 1 } })
    const retried = await placeOrderBatch([order([product.id], [1], { idempotencyKey: key, requestHash: 'h' })])
    expect(kinds(retried)).toEqual(['placed'])
  })
})

describe('a product deleted while a batch waits for its row', () => {
  test('the orders naming it get 404, their neighbours are placed', async () => {
    const doomed = await createProduct(adminToken, { inventory: 10 })
    const other = await createProduct(adminToken, { inventory: 10 })
    const deleting = await sql.reserve()
    let batch: ReturnType<typeof placeOrderBatch>
    try {
      await deleting`BEGIN`
      await deleting`UPDATE products SET deleted_at = now() WHERE id = ${doomed.id}`
      batch = placeOrderBatch([
        order([other.id], [1]),
        order([doomed.id], [1]),
        order([doomed.id, other.id], [1, 1]),
        order([other.id], [2]),
      ])
      await Bun.sleep(200) // the batch is now waiting for the doomed row's lock
      await deleting`COMMIT`
    } catch (error) {
      await deleting`ROLLBACK`.catch(() => {})
      throw error
    } finally {
      deleting.release()
    }
    expect(kinds(await batch)).toEqual([
      'placed',
      `rejected 404 Product ${doomed.id} not found`,
      `rejected 404 Product ${doomed.id} not found`,
      'placed',
    ])
    expect(await inventoryOf(other.id)).toBe(7)
  })
})

describe('the combiner', () => {
  test('orders arriving during a batch go together in the next; a fault in one is isolated', async () => {
    const product = await createProduct(adminToken, { inventory: 100 })
    const sizes: number[] = []
    const combiner = new OrderCombiner({
      single: placeSingleOrder,
      batch: (requests) => {
        sizes.push(requests.length)
        return placeOrderBatch(requests)
      },
    })
    const results = await Promise.allSettled([
      combiner.submit(order([product.id], [1])),
      ...Array.from({ length: 10 }, (_, i) =>
        // One order names a user that does not exist: its insert breaks the batch's statement.
        combiner.submit(order([product.id], [1], i === 4 ? { userId: 2_147_483_000 } : {})),
      ),
    ])
    // The first went alone (nothing was in flight); the other ten waited and went together.
    expect(sizes[0]).toBe(10)
    expect(results.map((result) => result.status)).toEqual([
      ...Array(5).fill('fulfilled'),
      'rejected',
      ...Array(5).fill('fulfilled'),
    ])
    const placed = results.filter(
      (result) => result.status === 'fulfilled' && (result.value as OrderOutcome).kind === 'placed',
    )
    expect(placed.length).toBe(10)
    expect(await inventoryOf(product.id)).toBe(90)
  })

  test('concurrent batches on scarce stock: each sees the stock the ones before it left, none fails', async () => {
    // A batch must hold its locks until its write has committed: were the locks released
    // early, the next batch would allocate units already promised and its write would break
    // the inventory check.
    const product = await createProduct(adminToken, { inventory: 50 })
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () => placeOrderBatch(Array.from({ length: 10 }, () => order([product.id], [1])))),
    )
    expect(results.filter((result) => result.status === 'rejected')).toEqual([])
    const outcomes = results.flatMap((result) => (result.status === 'fulfilled' ? result.value : []))
    expect(outcomes.filter((outcome) => outcome.kind === 'placed').length).toBe(50)
    expect(outcomes.filter((outcome) => outcome.kind === 'rejected').length).toBe(50)
    expect(await inventoryOf(product.id)).toBe(0)
  })

  test('concurrent batches over the same products in any order never deadlock and conserve units', async () => {
    const first = await createProduct(adminToken, { inventory: 500 })
    const second = await createProduct(adminToken, { inventory: 500 })
    const batches = await Promise.all(
      Array.from({ length: 12 }, (_, b) =>
        placeOrderBatch(
          Array.from({ length: 20 }, (_, i) =>
            (b + i) % 2 ? order([first.id, second.id], [2, 1]) : order([first.id, second.id], [1, 3]),
          ),
        ),
      ),
    )
    const placed = batches.flat().filter((outcome) => outcome.kind === 'placed')
    const units = (productId: number) =>
      placed.reduce(
        (sum, outcome) =>
          sum + (outcome.kind === 'placed' ? outcome.order.items.find((i) => i.product_id === productId)!.quantity : 0),
        0,
      )
    expect(batches.flat().every((outcome) => outcome.kind === 'placed' || outcome.kind === 'rejected')).toBe(true)
    for (const product of [first, second]) {
      const left = await inventoryOf(product.id)
      expect(left).toBeGreaterThanOrEqual(0)
      expect(left + units(product.id)).toBe(500)
    }
  })
})
