import { beforeAll, describe, expect, test } from 'bun:test'
import { call, countRows, createAdmin, createProduct, expectError, registerCustomer, sql } from './helpers'

let admin: string
let customer: string

beforeAll(async () => {
  admin = (await createAdmin()).token
  customer = (await registerCustomer()).token
})

const listedIds = async (active?: boolean) => {
  const rows = await sql<{ id: number }[]>`
    SELECT id FROM products WHERE deleted_at IS NULL ${active === undefined ? sql`` : sql`AND is_active = ${active}`} ORDER BY id`
  return rows.map((row) => row.id)
}

describe('GET /api/products', () => {
  beforeAll(async () => {
    for (let i = 0; i < 12; i++) await createProduct(admin, { is_active: i % 4 !== 0 })
    const gone = await createProduct(admin)
    expect((await call('DELETE', `/api/products/${gone.id}`, { token: admin })).status).toBe(204)
  })

  test('defaults to page 1 of 10, ordered by id, with totals', async () => {
    const ids = await listedIds()
    const reply = await call('GET', '/api/products')
    expect(reply.status).toBe(200)
    expect(Object.keys(reply.body).sort()).toEqual(['data', 'limit', 'page', 'total', 'total_pages'])
    expect(reply.body.page).toBe(1)
    expect(reply.body.limit).toBe(10)
    expect(reply.body.total).toBe(ids.length)
    expect(reply.body.total_pages).toBe(Math.ceil(ids.length / 10))
    expect(reply.body.data.map((p: { id: number }) => p.id)).toEqual(ids.slice(0, 10))
    expect(Object.keys(reply.body.data[0]).sort()).toEqual(
      [
        'created_at',
        'description',
        'id',
        'inventory',
        'is_active',
        'low_stock_threshold',
        'name',
        'price_cents',
        'updated_at',
      ].sort(),
    )
  })

  test('page and limit select the right slice; a page past the end is empty', async () => {
    const ids = await listedIds()
    const reply = await call('GET', '/api/products?page=2&limit=3')
    expect(reply.body.data.map((p: { id: number }) => p.id)).toEqual(ids.slice(3, 6))
    expect(reply.body.total_pages).toBe(Math.ceil(ids.length / 3))
    const past = await call('GET', '/api/products?page=1000&limit=5')
    expect(past.status).toBe(200)
    expect(past.body.data).toEqual([])
    expect(past.body.total).toBe(ids.length)
  })

  test('a limit above 50 is capped at 50', async () => {
    for (let i = 0; i < 40; i++) await createProduct(admin)
    const reply = await call('GET', '/api/products?limit=500')
    expect(reply.status).toBe(200)
    expect(reply.body.limit).toBe(50)
    expect(reply.body.data).toHaveLength(50)
  })

  test('active=true and active=false filter on is_active', async () => {
    for (const active of [true, false]) {
      const ids = await listedIds(active)
      const reply = await call('GET', `/api/products?active=${active}&limit=50`)
      expect(reply.body.total).toBe(ids.length)
      expect(reply.body.data.every((p: { is_active: boolean }) => p.is_active === active)).toBe(true)
    }
    expect((await listedIds(false)).length).toBeGreaterThan(0)
  })

  test('deleted products never appear', async () => {
    const [deleted] = await sql<{ id: number }[]>`SELECT id FROM products WHERE deleted_at IS NOT NULL LIMIT 1`
    const all = await call('GET', '/api/products?limit=50&page=1')
    const pages = all.body.total_pages
    for (let page = 1; page <= pages; page++) {
      const reply = await call('GET', `/api/products?limit=50&page=${page}`)
      expect(reply.body.data.some((p: { id: number }) => p.id === deleted!.id)).toBe(false)
    }
  })

  test.each([
    'page=0',
    'page=-1',
    'page=abc',
    'page=1.5',
    'page=1e3',
    'page=',
    'limit=0',
    'limit=-5',
    'limit=ten',
    'limit=2.5',
    'active=yes',
    'active=1',
    'active=TRUE',
    'page=99999999999',
  ])('?%s → 400', async (query) => {
    expectError(await call('GET', `/api/products?${query}`), 400)
  })
})

describe('GET /api/products/:id', () => {
  test('returns the product', async () => {
    const product = await createProduct(admin, { description: 'A thing', inventory: 3 })
    const reply = await call('GET', `/api/products/${product.id}`)
    expect(reply.status).toBe(200)
    expect(reply.body).toEqual(product)
  })

  test.each(['0', '-1', 'abc', '1e3', '1.5', '9999999999999999999', '0x10'])('id %s → 400', async (id) => {
    expectError(await call('GET', `/api/products/${id}`), 400)
  })

  test('an unknown id → 404', async () => {
    expectError(await call('GET', '/api/products/2147483647'), 404, /2147483647/)
  })
})

describe('POST /api/products', () => {
  test('creates with defaults: inventory 0, active, description null', async () => {
    const reply = await call('POST', '/api/products', { token: admin, body: { name: 'Plain', price_cents: 0 } })
    expect(reply.status).toBe(201)
    expect(reply.body).toMatchObject({
      name: 'Plain',
      price_cents: 0,
      inventory: 0,
      is_active: true,
      description: null,
    })
    expect((await call('GET', `/api/products/${reply.body.id}`)).body).toEqual(reply.body)
  })

  test('takes every field', async () => {
    const body = {
      name: 'Water Bottle',
      description: '24oz stainless steel',
      price_cents: 2499,
      inventory: 20,
      is_active: false,
    }
    const reply = await call('POST', '/api/products', { token: admin, body })
    expect(reply.status).toBe(201)
    expect(reply.body).toMatchObject(body)
  })

  test.each([
    ['missing name', { price_cents: 100 }],
    ['empty name', { name: '', price_cents: 100 }],
    ['blank name', { name: '   ', price_cents: 100 }],
    ['name of 201 characters', { name: 'n'.repeat(201), price_cents: 100 }],
    ['missing price', { name: 'x' }],
    ['negative price', { name: 'x', price_cents: -1 }],
    ['fractional price', { name: 'x', price_cents: 1.5 }],
    ['price as a string', { name: 'x', price_cents: '100' }],
    ['price above int4', { name: 'x', price_cents: 2 ** 31 }],
    ['negative inventory', { name: 'x', price_cents: 1, inventory: -1 }],
    ['is_active as a string', { name: 'x', price_cents: 1, is_active: 'true' }],
    ['an array body', [{ name: 'x', price_cents: 1 }]],
  ])('%s → 400 and nothing created', async (_case, body) => {
    const before = await countRows('products')
    expectError(await call('POST', '/api/products', { token: admin, body }), 400)
    expect(await countRows('products')).toBe(before)
  })

  test('a name of exactly 200 characters is accepted', async () => {
    expect(
      (await call('POST', '/api/products', { token: admin, body: { name: 'n'.repeat(200), price_cents: 1 } })).status,
    ).toBe(201)
  })
})

describe('PUT /api/products/:id', () => {
  test('updates any subset and bumps updated_at', async () => {
    const product = await createProduct(admin, { price_cents: 2499, inventory: 20 })
    const reply = await call('PUT', `/api/products/${product.id}`, {
      token: admin,
      body: { price_cents: 2199, inventory: 15 },
    })
    expect(reply.status).toBe(200)
    expect(reply.body).toMatchObject({
      id: product.id,
      name: product.name,
      price_cents: 2199,
      inventory: 15,
      is_active: true,
    })
    expect(reply.body.updated_at >= (product as unknown as { updated_at: string }).updated_at).toBe(true)
    const cleared = await call('PUT', `/api/products/${product.id}`, {
      token: admin,
      body: { description: null, is_active: false },
    })
    expect(cleared.body).toMatchObject({ description: null, is_active: false, price_cents: 2199 })
  })

  test('fields left out keep their values (an inactive product stays inactive)', async () => {
    const product = await createProduct(admin, { is_active: false, description: 'kept' })
    const reply = await call('PUT', `/api/products/${product.id}`, { token: admin, body: { name: 'Renamed' } })
    expect(reply.body).toMatchObject({
      name: 'Renamed',
      is_active: false,
      description: 'kept',
      price_cents: product.price_cents,
    })
  })

  test.each([
    ['an empty body', {}],
    ['only unknown fields', { colour: 'red' }],
    ['an invalid field', { price_cents: -5 }],
    ['a valid and an invalid field', { name: 'ok', inventory: 'lots' }],
  ])('%s → 400 and nothing changes', async (_case, body) => {
    const product = await createProduct(admin)
    expectError(await call('PUT', `/api/products/${product.id}`, { token: admin, body }), 400)
    expect((await call('GET', `/api/products/${product.id}`)).body).toEqual(product)
  })

  test('an unknown or deleted id → 404', async () => {
    expectError(await call('PUT', '/api/products/2147483647', { token: admin, body: { name: 'x' } }), 404)
    const product = await createProduct(admin)
    await call('DELETE', `/api/products/${product.id}`, { token: admin })
    expectError(await call('PUT', `/api/products/${product.id}`, { token: admin, body: { name: 'x' } }), 404)
  })
})

describe('DELETE /api/products/:id', () => {
  test('204, then 404 everywhere, and deleting again → 404', async () => {
    const product = await createProduct(admin)
    const reply = await call('DELETE', `/api/products/${product.id}`, { token: admin })
    expect(reply.status).toBe(204)
    expect(reply.body).toBeUndefined()
    expectError(await call('GET', `/api/products/${product.id}`), 404)
    expectError(await call('DELETE', `/api/products/${product.id}`, { token: admin }), 404)
  })

  test('orders containing the product keep their line items', async () => {
    const product = await createProduct(admin, { price_cents: 777, inventory: 5 })
    const order = await call('POST', '/api/orders', {
      token: customer,
      body: { items: [{ product_id: product.id, quantity: 2 }] },
    })
    expect(order.status).toBe(201)
    expect((await call('DELETE', `/api/products/${product.id}`, { token: admin })).status).toBe(204)
    const after = await call('GET', `/api/orders/${order.body.id}`, { token: customer })
    expect(after.body.items).toEqual([
      { product_id: product.id, name: product.name, unit_price_cents: 777, quantity: 2, line_total_cents: 1554 },
    ])
  })
})

describe('RBAC on admin product routes', () => {
  const routes: [string, (id: number) => string, unknown][] = [
    ['POST', () => '/api/products', { name: 'x', price_cents: 1 }],
    ['PUT', (id) => `/api/products/${id}`, { name: 'renamed' }],
    ['DELETE', (id) => `/api/products/${id}`, undefined],
  ]
  test.each(routes)('%s: no token → 401, customer → 403, and nothing changes', async (method, path, body) => {
    const product = await createProduct(admin)
    const before = await countRows('products')
    expectError(await call(method, path(product.id), { body }), 401)
    expectError(await call(method, path(product.id), { body, token: customer }), 403)
    expect(await countRows('products')).toBe(before)
    expect((await call('GET', `/api/products/${product.id}`)).body).toEqual(product)
  })

  test('without a token, even an invalid body is a 401 (auth comes first)', async () => {
    expectError(await call('POST', '/api/products', { body: {} }), 401)
    expectError(await call('POST', '/api/products', { body: {}, token: customer }), 403)
  })
})
