import { beforeAll, describe, expect, test } from 'bun:test'
import {
  type Account,
  call,
  countRows,
  createProduct,
  expectError,
  inventoryOf,
  registerCustomer,
  shopWith,
} from './helpers'

let admin: Account
let alice: Account
let bob: Account

beforeAll(async () => {
  ;({ admin, alice, bob } = await shopWith('alice', 'bob'))
})

const order = (token: string, items: unknown, extra: Record<string, unknown> = {}) =>
  call('POST', '/api/orders', { token, body: { items, ...extra } })

describe('POST /api/orders', () => {
  test('201 pending order: merged lines, database prices, totals, stock taken', async () => {
    const mug = await createProduct(admin.token, { price_cents: 1299, inventory: 10 })
    const pen = await createProduct(admin.token, { price_cents: 250, inventory: 5 })
    const reply = await order(alice.token, [
      { product_id: pen.id, quantity: 2, price_cents: 1 },
      { product_id: mug.id, quantity: 1 },
      { product_id: pen.id, quantity: 1 },
    ])
    expect(reply.status).toBe(201)
    expect(reply.body).toEqual({
      id: expect.any(Number),
      user_id: alice.user.id,
      status: 'pending',
      total_cents: 1299 + 3 * 250,
      items: [
        { product_id: mug.id, name: mug.name, unit_price_cents: 1299, quantity: 1, line_total_cents: 1299 },
        { product_id: pen.id, name: pen.name, unit_price_cents: 250, quantity: 3, line_total_cents: 750 },
      ].sort((a, b) => a.product_id - b.product_id),
      shipment: null,
      shipping_address: null,
      delivered_at: null,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    })
    expect(new Date(reply.body.created_at).toISOString()).toBe(reply.body.created_at)
    expect(await inventoryOf(mug.id)).toBe(9)
    expect(await inventoryOf(pen.id)).toBe(2)
  })

  test('the exact remaining stock can be bought, then the product is sold out (409)', async () => {
    const product = await createProduct(admin.token, { inventory: 3 })
    expect((await order(alice.token, [{ product_id: product.id, quantity: 3 }])).status).toBe(201)
    expect(await inventoryOf(product.id)).toBe(0)
    expectError(
      await order(alice.token, [{ product_id: product.id, quantity: 1 }]),
      409,
      new RegExp(`\\b${product.id}\\b`),
    )
  })

  test('price snapshots: a later price change does not rewrite the order', async () => {
    const product = await createProduct(admin.token, { price_cents: 500, inventory: 5 })
    const placed = await order(alice.token, [{ product_id: product.id, quantity: 1 }])
    await call('PUT', `/api/products/${product.id}`, {
      token: admin.token,
      body: { price_cents: 900, name: 'Renamed' },
    })
    const reread = await call('GET', `/api/orders/${placed.body.id}`, { token: alice.token })
    expect(reread.body.items[0]).toMatchObject({ unit_price_cents: 500, name: product.name })
    expect(reread.body.total_cents).toBe(500)
  })

  test('large totals stay exact (50 lines × 1000 units × high prices)', async () => {
    const items = []
    for (let i = 0; i < 50; i++) {
      const product = await createProduct(admin.token, { price_cents: 2_000_000_000, inventory: 1000 })
      items.push({ product_id: product.id, quantity: 1000 })
    }
    const reply = await order(alice.token, items)
    expect(reply.status).toBe(201)
    expect(reply.body.total_cents).toBe(50 * 1000 * 2_000_000_000)
    expect(reply.body.items).toHaveLength(50)
  })

  describe('a failed order changes nothing', () => {
    test.each([
      ['unknown product → 404', 404, async (): Promise<number> => 2147483000, /2147483000/],
      [
        'deleted product → 404',
        404,
        async (): Promise<number> => {
          const product = await createProduct(admin.token)
          await call('DELETE', `/api/products/${product.id}`, { token: admin.token })
          return product.id
        },
        undefined,
      ],
      [
        'inactive product → 409',
        409,
        async (): Promise<number> => (await createProduct(admin.token, { is_active: false })).id,
        /not active/,
      ],
      [
        'insufficient inventory → 409',
        409,
        async (): Promise<number> => (await createProduct(admin.token, { inventory: 1 })).id,
        /[Ii]nsufficient/,
      ],
    ] as const)(
      '%s, naming the product, with the other lines untouched',
      async (_case, status, makeProductId, message) => {
        const fine = await createProduct(admin.token, { inventory: 10 })
        const badId = await makeProductId()
        const ordersBefore = await countRows('orders')
        const itemsBefore = await countRows('order_items')
        const reply = await order(alice.token, [
          { product_id: fine.id, quantity: 2 },
          { product_id: badId, quantity: 2 },
        ])
        expectError(reply, status, message ?? new RegExp(`\\b${badId}\\b`))
        expect(reply.body.error).toContain(String(badId))
        expect(await inventoryOf(fine.id)).toBe(10)
        expect(await countRows('orders')).toBe(ordersBefore)
        expect(await countRows('order_items')).toBe(itemsBefore)
      },
    )

    test('404 wins over 409 when both happen in one order', async () => {
      const inactive = await createProduct(admin.token, { is_active: false })
      expectError(
        await order(alice.token, [
          { product_id: inactive.id, quantity: 1 },
          { product_id: 2147483001, quantity: 1 },
        ]),
        404,
      )
    })

    test('merged quantities are checked together against the stock', async () => {
      const product = await createProduct(admin.token, { inventory: 5 })
      expectError(
        await order(alice.token, [
          { product_id: product.id, quantity: 3 },
          { product_id: product.id, quantity: 3 },
        ]),
        409,
      )
      expect(await inventoryOf(product.id)).toBe(5)
    })
  })

  test.each([
    ['no items field', {}],
    ['an empty items list', { items: [] }],
    ['51 items', { items: Array.from({ length: 51 }, (_, i) => ({ product_id: i + 1, quantity: 1 })) }],
    ['quantity 0', { items: [{ product_id: 1, quantity: 0 }] }],
    ['quantity 1001', { items: [{ product_id: 1, quantity: 1001 }] }],
    ['negative quantity', { items: [{ product_id: 1, quantity: -1 }] }],
    ['fractional quantity', { items: [{ product_id: 1, quantity: 1.5 }] }],
    ['quantity as a string', { items: [{ product_id: 1, quantity: '1' }] }],
    ['product_id 0', { items: [{ product_id: 0, quantity: 1 }] }],
    ['product_id as a string', { items: [{ product_id: '1', quantity: 1 }] }],
    ['product_id above int4', { items: [{ product_id: 2 ** 53, quantity: 1 }] }],
    ['missing quantity', { items: [{ product_id: 1 }] }],
    ['items as an object', { items: { product_id: 1, quantity: 1 } }],
    ['a line that is null', { items: [null] }],
  ])('%s → 400 and nothing changes', async (_case, body) => {
    const before = await countRows('orders')
    expectError(await call('POST', '/api/orders', { token: alice.token, body }), 400)
    expect(await countRows('orders')).toBe(before)
  })

  test('malformed JSON → 400', async () => {
    expectError(
      await call('POST', '/api/orders', {
        token: alice.token,
        rawBody: '{"items": [',
        headers: { 'content-type': 'application/json' },
      }),
      400,
    )
  })

  test('no token → 401; an admin token → 403; nothing is taken', async () => {
    const product = await createProduct(admin.token, { inventory: 4 })
    const items = [{ product_id: product.id, quantity: 1 }]
    expectError(await call('POST', '/api/orders', { body: { items } }), 401)
    expectError(await order(admin.token, items), 403)
    expect(await inventoryOf(product.id)).toBe(4)
  })
})

describe('reading orders', () => {
  let carolOrders: number[]
  let carol: { token: string; user: { id: number } }

  beforeAll(async () => {
    carol = await registerCustomer('carol')
    const product = await createProduct(admin.token, { inventory: 100 })
    carolOrders = []
    for (let i = 0; i < 3; i++)
      carolOrders.push((await order(carol.token, [{ product_id: product.id, quantity: 1 }])).body.id)
    await order(bob.token, [{ product_id: product.id, quantity: 1 }])
  })

  test('/orders/me lists only my orders, newest first, paginated', async () => {
    const reply = await call('GET', '/api/orders/me', { token: carol.token })
    expect(reply.status).toBe(200)
    expect(reply.body).toMatchObject({ page: 1, limit: 10, total: 3, total_pages: 1 })
    expect(reply.body.data.map((o: { id: number }) => o.id)).toEqual([...carolOrders].reverse())
    expect(
      reply.body.data.every(
        (o: { user_id: number; items: unknown[] }) => o.user_id === carol.user.id && o.items.length === 1,
      ),
    ).toBe(true)
    const second = await call('GET', '/api/orders/me?page=2&limit=2', { token: carol.token })
    expect(second.body).toMatchObject({ page: 2, limit: 2, total: 3, total_pages: 2 })
    expect(second.body.data.map((o: { id: number }) => o.id)).toEqual([carolOrders[0]])
  })

  test('/orders/me works for an admin too (their own, none) and rejects bad paging', async () => {
    const reply = await call('GET', '/api/orders/me', { token: admin.token })
    expect(reply.status).toBe(200)
    expect(reply.body.total).toBe(0)
    expectError(await call('GET', '/api/orders/me?page=0', { token: carol.token }), 400)
    expectError(await call('GET', '/api/orders/me'), 401)
  })

  test('admin /orders lists everything newest first, with status and user_id filters', async () => {
    const all = await call('GET', '/api/orders?limit=50', { token: admin.token })
    expect(all.status).toBe(200)
    expect(all.body.total).toBe(await countRows('orders'))
    const ids = all.body.data.map((o: { id: number }) => o.id)
    expect(ids).toEqual([...ids].sort((a: number, b: number) => b - a))

    const mine = await call('GET', `/api/orders?user_id=${carol.user.id}`, { token: admin.token })
    expect(mine.body.total).toBe(3)
    expect(mine.body.data.map((o: { id: number }) => o.id)).toEqual([...carolOrders].reverse())

    const pending = await call('GET', `/api/orders?status=pending&user_id=${carol.user.id}`, { token: admin.token })
    expect(pending.body.total).toBe(3)
    const cancelled = await call('GET', `/api/orders?status=cancelled&user_id=${carol.user.id}`, { token: admin.token })
    expect(cancelled.body.total).toBe(0)
  })

  test.each(['status=lost', 'status=', 'user_id=abc', 'user_id=0', 'page=-1', 'limit=x'])(
    'admin /orders?%s → 400',
    async (query) => {
      expectError(await call('GET', `/api/orders?${query}`, { token: admin.token }), 400)
    },
  )

  test('admin /orders: no token → 401, customer → 403', async () => {
    expectError(await call('GET', '/api/orders'), 401)
    expectError(await call('GET', '/api/orders', { token: carol.token }), 403)
  })

  test('/orders/:id: owner and admin get it, anyone else gets 404', async () => {
    const id = carolOrders[0]
    const owner = await call('GET', `/api/orders/${id}`, { token: carol.token })
    expect(owner.status).toBe(200)
    expect(owner.body.id).toBe(id)
    expect((await call('GET', `/api/orders/${id}`, { token: admin.token })).body).toEqual(owner.body)
    expectError(await call('GET', `/api/orders/${id}`, { token: bob.token }), 404)
    expectError(await call('GET', `/api/orders/2147483647`, { token: carol.token }), 404)
    expectError(await call('GET', `/api/orders/${id}`), 401)
    expectError(await call('GET', `/api/orders/abc`, { token: carol.token }), 400)
  })
})
