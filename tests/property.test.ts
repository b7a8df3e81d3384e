import { beforeAll, describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { call, createAdmin, createProduct, registerCustomer, sql } from './helpers'

// Random batches of orders and cancellations, fired at once, must never break the inventory
// invariants: stock never negative, and for every product, stock + units held by live orders
// equals the stock it started with.

let adminToken: string
let customers: string[]

beforeAll(async () => {
  adminToken = (await createAdmin()).token
  customers = await Promise.all(Array.from({ length: 4 }, async (_, i) => (await registerCustomer(`prop${i}`)).token))
})

type Step =
  | { kind: 'order'; customer: number; lines: { product: number; quantity: number }[] }
  | { kind: 'cancel'; customer: number; target: number }

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('order' as const),
      customer: fc.nat({ max: 3 }),
      lines: fc.array(fc.record({ product: fc.nat({ max: 3 }), quantity: fc.integer({ min: 1, max: 6 }) }), {
        minLength: 1,
        maxLength: 4,
      }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('cancel' as const),
      customer: fc.nat({ max: 3 }),
      target: fc.nat({ max: 30 }),
    }),
  },
)

describe('inventory invariants (property-based)', () => {
  test('any batch of concurrent orders and cancels keeps stock ≥ 0 and units conserved', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 12 }), { minLength: 4, maxLength: 4 }),
        fc.array(stepArbitrary, { minLength: 1, maxLength: 30 }),
        async (stocks, steps) => {
          const products = await Promise.all(stocks.map((inventory) => createProduct(adminToken, { inventory })))
          const placedIds: number[] = []
          // First wave: orders (placing some to cancel); second wave: everything at once.
          const first = await Promise.all(
            steps
              .slice(0, 5)
              .filter((s) => s.kind === 'order')
              .map((s) => placeOrderStep(s as Extract<Step, { kind: 'order' }>, products)),
          )
          for (const reply of first) if (reply.status === 201) placedIds.push(reply.body.id)
          const replies = await Promise.all(
            steps
              .slice(5)
              .map((step) =>
                step.kind === 'order'
                  ? placeOrderStep(step, products)
                  : call(
                      'POST',
                      `/api/orders/${placedIds[step.target % Math.max(placedIds.length, 1)] ?? 2147483647}/cancel`,
                      { token: customers[step.customer] },
                    ),
              ),
          )
          for (const reply of [...first, ...replies]) expect([200, 201, 404, 409]).toContain(reply.status)

          for (const [index, product] of products.entries()) {
            const [row] = await sql`
              SELECT p.inventory::float8 AS inventory,
                     coalesce((SELECT sum(i.quantity) FROM order_items i JOIN orders o ON o.id = i.order_id
                               WHERE i.product_id = p.id AND o.status <> 'cancelled'), 0)::int AS held
              FROM products p WHERE p.id = ${product.id}`
            expect(row!.inventory).toBeGreaterThanOrEqual(0)
            expect(row!.inventory + row!.held).toBe(stocks[index]!)
          }
        },
      ),
      { numRuns: 15 },
    )
  })
})

function placeOrderStep(step: Extract<Step, { kind: 'order' }>, products: { id: number }[]) {
  return call('POST', '/api/orders', {
    token: customers[step.customer],
    body: { items: step.lines.map((line) => ({ product_id: products[line.product]!.id, quantity: line.quantity })) },
  })
}
