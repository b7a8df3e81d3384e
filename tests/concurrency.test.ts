import { beforeAll, describe, expect, test } from 'bun:test'
import { call, createAdmin, createProduct, inventoryOf, registerCustomer, sql } from './helpers'

let adminToken: string
let customers: string[]

beforeAll(async () => {
  adminToken = (await createAdmin()).token
  customers = await Promise.all(Array.from({ length: 20 }, async (_, i) => (await registerCustomer(`crowd${i}`)).token))
})

const statusCounts = (statuses: number[]) =>
  statuses.reduce<Record<number, number>>((counts, status) => {
    counts[status] = (counts[status] ?? 0) + 1
    return counts
  }, {})

async function unitsSold(productId: number) {
  const [row] = await sql<
    { units: string | null }[]
  >`SELECT sum(quantity) AS units FROM order_items WHERE product_id = ${productId}`
  return Number(row!.units ?? 0)
}

describe('atomic inventory under concurrency', () => {
  test('inventory 50, 300 concurrent one-unit orders from 20 customers: exactly 50 succeed, the rest 409', async () => {
    const product = await createProduct(adminToken, { inventory: 50 })
    const replies = await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        call('POST', '/api/orders', {
          token: customers[i % 20],
          body: { items: [{ product_id: product.id, quantity: 1 }] },
        }),
      ),
    )
    const counts = statusCounts(replies.map((reply) => reply.status))
    expect(counts).toEqual({ 201: 50, 409: 250 })
    expect(await inventoryOf(product.id)).toBe(0)
    expect(await unitsSold(product.id)).toBe(50)
    const ids = new Set(replies.filter((reply) => reply.status === 201).map((reply) => reply.body.id))
    expect(ids.size).toBe(50)
  })

  test('200 concurrent two-line orders over the same two products in opposite orders: no 5xx, units conserved', async () => {
    const first = await createProduct(adminToken, { inventory: 250 })
    const second = await createProduct(adminToken, { inventory: 250 })
    const replies = await Promise.all(
      Array.from({ length: 200 }, (_, i) => {
        const lines = [
          { product_id: first.id, quantity: 1 + (i % 3) },
          { product_id: second.id, quantity: 1 + ((i + 1) % 3) },
        ]
        return call('POST', '/api/orders', {
          token: customers[i % 20],
          body: { items: i % 2 ? lines : lines.reverse() },
        })
      }),
    )
    const statuses = replies.map((reply) => reply.status)
    expect(statuses.filter((status) => status >= 500)).toEqual([])
    expect(statuses.every((status) => status === 201 || status === 409)).toBe(true)
    // 200 orders want ~400 units of each product and 250 exist: some must have been refused.
    expect(statuses.filter((status) => status === 409).length).toBeGreaterThan(0)

    for (const product of [first, second]) {
      const remaining = await inventoryOf(product.id)
      expect(remaining).toBeGreaterThanOrEqual(0)
      const sold = await unitsSold(product.id)
      expect(remaining + sold).toBe(250)
      const soldPerReplies = replies
        .filter((reply) => reply.status === 201)
        .flatMap((reply) => reply.body.items)
        .filter((item: { product_id: number }) => item.product_id === product.id)
        .reduce((sum: number, item: { quantity: number }) => sum + item.quantity, 0)
      expect(soldPerReplies).toBe(sold)
    }
  })

  test('plenty of stock: 200 crossing two-line orders all succeed, none surfaces a deadlock', async () => {
    const first = await createProduct(adminToken, { inventory: 10_000 })
    const second = await createProduct(adminToken, { inventory: 10_000 })
    const replies = await Promise.all(
      Array.from({ length: 200 }, (_, i) => {
        const lines = [
          { product_id: first.id, quantity: 2 },
          { product_id: second.id, quantity: 3 },
        ]
        return call('POST', '/api/orders', {
          token: customers[i % 20],
          body: { items: i % 2 ? lines : lines.reverse() },
        })
      }),
    )
    expect(statusCounts(replies.map((reply) => reply.status))).toEqual({ 201: 200 })
    expect(await inventoryOf(first.id)).toBe(10_000 - 400)
    expect(await inventoryOf(second.id)).toBe(10_000 - 600)
  })
})
