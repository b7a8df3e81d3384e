import { beforeAll, describe, expect, test } from 'bun:test'
import { call, countRows, createAdmin, createProduct, expectError, inventoryOf, registerCustomer, sql } from './helpers'

// The shipping address an order goes to: validated, stored as a snapshot, shown with the order
// and its webhook data, and part of what an Idempotency-Key compares.

let admin: { token: string }
let customer: { token: string }
beforeAll(async () => {
  admin = await createAdmin()
  customer = await registerCustomer('shipping')
})

const ADDRESS = {
  name: 'Ada Lovelace',
  line1: '12 St James Square',
  line2: 'Flat 3',
  city: 'London',
  region: 'Greater London',
  postal_code: 'SW1Y 4JH',
  country: 'GB',
  phone: '+44 20 7946 0000',
}
const order = (productId: number, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
  call('POST', '/api/orders', {
    token: customer.token,
    body: { items: [{ product_id: productId, quantity: 1 }], ...extra },
    headers,
  })

describe('shipping_address on orders', () => {
  test('stored as sent and shown by the order, its reads and its order.placed event; null without one', async () => {
    const product = await createProduct(admin.token, { inventory: 10 })
    const placed = await order(product.id, { shipping_address: { ...ADDRESS, nickname: 'ignored' } })
    expect(placed.status).toBe(201)
    expect(placed.body.shipping_address).toEqual(ADDRESS)
    expect(
      (await call('GET', `/api/orders/${placed.body.id}`, { token: customer.token })).body.shipping_address,
    ).toEqual(ADDRESS)
    const [event] = await sql<{ payload: { shipping_address: unknown } }[]>`
      SELECT payload FROM events WHERE order_id = ${placed.body.id} AND type = 'order.placed'`
    expect(event!.payload.shipping_address).toEqual(ADDRESS)

    const minimal = { name: 'Grace', line1: '1 Navy Yard', city: 'Arlington', postal_code: '22202', country: 'US' }
    expect((await order(product.id, { shipping_address: minimal })).body.shipping_address).toEqual(minimal)
    const none = await order(product.id)
    expect(none.status).toBe(201)
    expect(none.body.shipping_address).toBeNull()
  })

  test.each([
    ['no name', { ...ADDRESS, name: undefined }],
    ['a blank name', { ...ADDRESS, name: '   ' }],
    ['a name of 101 characters', { ...ADDRESS, name: 'n'.repeat(101) }],
    ['no line1', { ...ADDRESS, line1: undefined }],
    ['line1 of 201 characters', { ...ADDRESS, line1: 'l'.repeat(201) }],
    ['line2 of 201 characters', { ...ADDRESS, line2: 'l'.repeat(201) }],
    ['no city', { ...ADDRESS, city: undefined }],
    ['a city as a number', { ...ADDRESS, city: 42 }],
    ['region of 101 characters', { ...ADDRESS, region: 'r'.repeat(101) }],
    ['no postal_code', { ...ADDRESS, postal_code: undefined }],
    ['postal_code of 21 characters', { ...ADDRESS, postal_code: '1'.repeat(21) }],
    ['no country', { ...ADDRESS, country: undefined }],
    ['a lower-case country', { ...ADDRESS, country: 'gb' }],
    ['a three-letter country', { ...ADDRESS, country: 'GBR' }],
    ['phone of 31 characters', { ...ADDRESS, phone: '1'.repeat(31) }],
    ['a control character', { ...ADDRESS, line1: '12 St James\nSquare' }],
    ['an address that is a string', '12 St James Square, London'],
    ['an address that is null', null],
  ])('%s → 400, nothing changes', async (_, shippingAddress) => {
    const product = await createProduct(admin.token, { inventory: 5 })
    const orders = await countRows('orders')
    const reply = await order(product.id, { shipping_address: shippingAddress })
    expectError(reply, 400)
    expect(await inventoryOf(product.id)).toBe(5)
    expect(await countRows('orders')).toBe(orders)
  })

  test('part of the body an Idempotency-Key compares: the same address replays, another is a 422', async () => {
    const product = await createProduct(admin.token, { inventory: 10 })
    const key = `shipping-${Date.now()}`
    const first = await order(product.id, { shipping_address: ADDRESS }, { 'idempotency-key': key })
    expect(first.status).toBe(201)
    const again = await order(product.id, { shipping_address: ADDRESS }, { 'idempotency-key': key })
    expect(again.status).toBe(201)
    expect(again.headers.get('idempotent-replayed')).toBe('true')
    expect(again.body.id).toBe(first.body.id)
    const elsewhere = await order(
      product.id,
      { shipping_address: { ...ADDRESS, city: 'Paris', country: 'FR' } },
      { 'idempotency-key': key },
    )
    expectError(elsewhere, 422)
    const without = await order(product.id, {}, { 'idempotency-key': key })
    expectError(without, 422)
    expect(await inventoryOf(product.id)).toBe(9)
  })

  test('orders placed together in one batch each keep their own address (40 at once, no 5xx, units conserved)', async () => {
    const product = await createProduct(admin.token, { inventory: 30 })
    const replies = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        order(product.id, { shipping_address: { ...ADDRESS, name: `Customer ${i}`, postal_code: `P${i}` } }),
      ),
    )
    expect(replies.filter((reply) => reply.status >= 500)).toEqual([])
    const placed = replies.filter((reply) => reply.status === 201)
    expect(placed.length).toBe(30)
    expect(replies.filter((reply) => reply.status === 409).length).toBe(10)
    for (const reply of placed) {
      const i = Number(reply.body.shipping_address.name.slice('Customer '.length))
      expect(reply.body.shipping_address.postal_code).toBe(`P${i}`)
      const [stored] = await sql<{ shipping_address: { name: string } }[]>`
        SELECT shipping_address FROM orders WHERE id = ${reply.body.id}`
      expect(stored!.shipping_address.name).toBe(`Customer ${i}`)
    }
    expect(await inventoryOf(product.id)).toBe(0)
  })
})
