import { beforeAll, describe, expect, test } from 'bun:test'
import { call, createAdmin, createProduct, expectError, registerCustomer, sql } from './helpers'

// A battery of malformed and hostile requests over every route. Each must get its exact 4xx
// status and a JSON {error}, and must change nothing in the database.

type Who = 'anonymous' | 'customer' | 'admin'
type Case = {
  name: string
  method: string
  path: string | (() => string)
  as?: Who
  body?: unknown
  raw?: { text: string; contentType: string }
  headers?: Record<string, string>
  status: number
}

const tokens: Record<Who, string | undefined> = { anonymous: undefined, customer: undefined, admin: undefined }
let activeId = 0
let inactiveId = 0
let orderId = 0

beforeAll(async () => {
  tokens.admin = (await createAdmin()).token
  tokens.customer = (await registerCustomer('battery')).token
  activeId = (await createProduct(tokens.admin!, { inventory: 5 })).id
  inactiveId = (await createProduct(tokens.admin!, { inventory: 5, is_active: false })).id
  const placed = await call('POST', '/api/orders', {
    token: tokens.customer,
    body: { items: [{ product_id: activeId, quantity: 1 }] },
  })
  orderId = placed.body.id
})

/** Everything a bad request could have touched, as one comparable value. */
async function fingerprint() {
  const [row] = await sql`
    SELECT (SELECT count(*) FROM users) AS users,
           (SELECT string_agg(id || ':' || role, ',' ORDER BY id) FROM users) AS roles,
           (SELECT count(*) FROM products) AS products,
           (SELECT string_agg(id || ':' || inventory || ':' || price_cents || ':' || is_active || ':' || (deleted_at IS NULL) || ':' || updated_at, ',' ORDER BY id) FROM products) AS product_state,
           (SELECT count(*) FROM orders) AS orders,
           (SELECT string_agg(id || ':' || status, ',' ORDER BY id) FROM orders) AS order_state,
           (SELECT count(*) FROM order_items) AS order_items,
           (SELECT count(*) FROM outbox) AS outbox,
           (SELECT count(*) FROM idempotency_keys) AS idempotency_keys`
  return row
}

const item = (product_id: unknown, quantity: unknown) => ({ product_id, quantity })
const json = (text: string) => ({ text, contentType: 'application/json' })
const register = (body: unknown): Omit<Case, 'name'> => ({
  method: 'POST',
  path: '/api/auth/register',
  body,
  status: 400,
})
const login = (body: unknown, status = 400): Omit<Case, 'name'> => ({
  method: 'POST',
  path: '/api/auth/login',
  body,
  status,
})
const create = (body: unknown): Omit<Case, 'name'> => ({
  method: 'POST',
  path: '/api/products',
  as: 'admin',
  body,
  status: 400,
})
const update = (body: unknown): Omit<Case, 'name'> => ({
  method: 'PUT',
  path: () => `/api/products/${activeId}`,
  as: 'admin',
  body,
  status: 400,
})
const order = (body: unknown, status = 400): Omit<Case, 'name'> => ({
  method: 'POST',
  path: '/api/orders',
  as: 'customer',
  body,
  status,
})
const getProduct = (id: string): Omit<Case, 'name'> => ({ method: 'GET', path: `/api/products/${id}`, status: 400 })
const list = (query: string): Omit<Case, 'name'> => ({ method: 'GET', path: `/api/products?${query}`, status: 400 })

const cases: Case[] = [
  // register
  {
    name: 'register: malformed JSON',
    method: 'POST',
    path: '/api/auth/register',
    raw: json('{"email": "a@b.co", '),
    status: 400,
  },
  {
    name: 'register: JSON sent as text/plain',
    method: 'POST',
    path: '/api/auth/register',
    raw: { text: '{"email":"tp@example.com","password":"password123"}', contentType: 'text/plain' },
    status: 400,
  },
  {
    name: 'register: form-encoded body',
    method: 'POST',
    path: '/api/auth/register',
    raw: { text: 'email=f%40example.com&password=password123', contentType: 'application/x-www-form-urlencoded' },
    status: 400,
  },
  { name: 'register: empty body', method: 'POST', path: '/api/auth/register', raw: json(''), status: 400 },
  { name: 'register: null body', method: 'POST', path: '/api/auth/register', raw: json('null'), status: 400 },
  { name: 'register: array body', ...register([{ email: 'arr@example.com', password: 'password123' }]) },
  { name: 'register: email as a number', ...register({ email: 12345, password: 'password123' }) },
  { name: 'register: email as an object', ...register({ email: { $ne: null }, password: 'password123' }) },
  { name: 'register: missing email', ...register({ password: 'password123' }) },
  {
    name: 'register: SQL in the email',
    ...register({ email: "x@y.com'; DROP TABLE users; --", password: 'password123' }),
  },
  {
    name: 'register: 300-character email',
    ...register({ email: `${'a'.repeat(290)}@example.com`, password: 'password123' }),
  },
  {
    name: 'register: 10 000-character password',
    ...register({ email: 'longpw@example.com', password: 'p'.repeat(10_000) }),
  },
  {
    name: 'register: null byte in the email',
    ...register({ email: 'nul\u0000l@example.com', password: 'password123' }),
  },
  {
    name: 'register: duplicate keys, the last one invalid',
    method: 'POST',
    path: '/api/auth/register',
    raw: json('{"email":"dupkey@example.com","password":"password123","password":"short"}'),
    status: 400,
  },
  {
    name: 'register: role admin with a short password',
    ...register({ email: 'role@example.com', password: 'x', role: 'admin' }),
  },
  // login
  { name: 'login: malformed JSON', method: 'POST', path: '/api/auth/login', raw: json('{"email"'), status: 400 },
  { name: 'login: email as an object', ...login({ email: { $gt: '' }, password: 'password123' }) },
  { name: 'login: missing password', ...login({ email: 'a@example.com' }) },
  { name: 'login: SQL injection in the email', ...login({ email: "' OR '1'='1", password: "' OR '1'='1" }, 401) },
  {
    name: 'login: unicode email that matches nobody',
    ...login({ email: 'ünïcødé@exämple.com', password: 'password123' }, 401),
  },
  // me
  {
    name: 'me: garbage bearer token',
    method: 'GET',
    path: '/api/auth/me',
    headers: { authorization: 'Bearer ../../etc/passwd' },
    status: 401,
  },
  {
    name: 'me: SQL as the bearer token',
    method: 'GET',
    path: '/api/auth/me',
    headers: { authorization: "Bearer ' OR 1=1 --" },
    status: 401,
  },
  // product list
  { name: 'list: page=0', ...list('page=0') },
  { name: 'list: page=-1', ...list('page=-1') },
  { name: 'list: page=1e3', ...list('page=1e3') },
  { name: 'list: page=abc', ...list('page=abc') },
  { name: 'list: page=9999999999999999999', ...list('page=9999999999999999999') },
  { name: 'list: page=1.0', ...list('page=1.0') },
  { name: 'list: page in Arabic-Indic digits', ...list('page=%D9%A3') },
  { name: 'list: limit=0', ...list('limit=0') },
  { name: 'list: limit=%00', ...list('limit=%00') },
  { name: 'list: limit with SQL', ...list('limit=10;DELETE%20FROM%20products') },
  { name: 'list: active=maybe', ...list('active=maybe') },
  { name: 'list: active empty', ...list('active=') },
  // product by id
  { name: 'get product: id 0', ...getProduct('0') },
  { name: 'get product: id -1', ...getProduct('-1') },
  { name: 'get product: id 1e3', ...getProduct('1e3') },
  { name: 'get product: id abc', ...getProduct('abc') },
  { name: 'get product: id 9999999999999999999', ...getProduct('9999999999999999999') },
  { name: 'get product: id 1.5', ...getProduct('1.5') },
  { name: 'get product: id with SQL', ...getProduct('1%20OR%201=1') },
  { name: 'get product: full-width digit id', ...getProduct('%EF%BC%91') },
  { name: 'get product: unknown id', method: 'GET', path: '/api/products/2147483647', status: 404 },
  // product create
  { name: 'create: price as a string', ...create({ name: 'x', price_cents: '100' }) },
  { name: 'create: negative price', ...create({ name: 'x', price_cents: -1 }) },
  { name: 'create: fractional price', ...create({ name: 'x', price_cents: 1.5 }) },
  { name: 'create: price 2^53', ...create({ name: 'x', price_cents: 2 ** 53 }) },
  {
    name: 'create: price 1e400 (Infinity)',
    method: 'POST',
    path: '/api/products',
    as: 'admin',
    raw: json('{"name":"x","price_cents":1e400}'),
    status: 400,
  },
  { name: 'create: name as an array', ...create({ name: ['x'], price_cents: 1 }) },
  { name: 'create: empty name', ...create({ name: '', price_cents: 1 }) },
  { name: 'create: 201-character name', ...create({ name: 'n'.repeat(201), price_cents: 1 }) },
  { name: 'create: null byte in the name', ...create({ name: 'bad\u0000name', price_cents: 1 }) },
  { name: 'create: inventory null', ...create({ name: 'x', price_cents: 1, inventory: null }) },
  { name: 'create: is_active "yes"', ...create({ name: 'x', price_cents: 1, is_active: 'yes' }) },
  {
    name: 'create: 6000-character description',
    ...create({ name: 'x', price_cents: 1, description: 'd'.repeat(6000) }),
  },
  { name: 'create: array body', ...create([{ name: 'x', price_cents: 1 }]) },
  { name: 'create: no body', method: 'POST', path: '/api/products', as: 'admin', status: 400 },
  {
    name: 'create: as a customer',
    method: 'POST',
    path: '/api/products',
    as: 'customer',
    body: { name: 'x', price_cents: 1 },
    status: 403,
  },
  {
    name: 'create: without a token',
    method: 'POST',
    path: '/api/products',
    body: { name: 'x', price_cents: 1 },
    status: 401,
  },
  // product update / delete
  { name: 'update: empty object', ...update({}) },
  { name: 'update: only unknown fields', ...update({ colour: 'red', sql: 'DROP TABLE products' }) },
  { name: 'update: negative price', ...update({ price_cents: -5 }) },
  { name: 'update: inventory "many"', ...update({ inventory: 'many' }) },
  { name: 'update: inventory 2^31', ...update({ inventory: 2 ** 31 }) },
  { name: 'update: id abc', method: 'PUT', path: '/api/products/abc', as: 'admin', body: { name: 'x' }, status: 400 },
  {
    name: 'update: unknown id',
    method: 'PUT',
    path: '/api/products/2147483647',
    as: 'admin',
    body: { name: 'x' },
    status: 404,
  },
  { name: 'delete: id 0', method: 'DELETE', path: '/api/products/0', as: 'admin', status: 400 },
  { name: 'delete: id -1', method: 'DELETE', path: '/api/products/-1', as: 'admin', status: 400 },
  { name: 'delete: unknown id', method: 'DELETE', path: '/api/products/2147483647', as: 'admin', status: 404 },
  {
    name: 'delete: as a customer',
    method: 'DELETE',
    path: () => `/api/products/${activeId}`,
    as: 'customer',
    status: 403,
  },
  // order create
  { name: 'order: empty items', ...order({ items: [] }) },
  { name: 'order: 51 items', ...order({ items: Array.from({ length: 51 }, (_, i) => item(i + 1, 1)) }) },
  { name: 'order: quantity 0', ...order({ items: [item(1, 0)] }) },
  { name: 'order: quantity 1001', ...order({ items: [item(1, 1001)] }) },
  { name: 'order: quantity -1', ...order({ items: [item(1, -1)] }) },
  {
    name: 'order: lines of one product adding up to 1001',
    method: 'POST',
    path: '/api/orders',
    as: 'customer',
    body: () => ({ items: [item(activeId, 1000), item(activeId, 1)] }),
    status: 400,
  } as unknown as Case,
  {
    name: 'order: 50 lines of 1000 for one product',
    method: 'POST',
    path: '/api/orders',
    as: 'customer',
    body: () => ({ items: Array.from({ length: 50 }, () => item(activeId, 1000)) }),
    status: 400,
  } as unknown as Case,
  { name: 'order: quantity 2.5', ...order({ items: [item(1, 2.5)] }) },
  { name: 'order: quantity "1"', ...order({ items: [item(1, '1')] }) },
  { name: 'order: quantity full-width "１"', ...order({ items: [item(1, '１')] }) },
  { name: 'order: product_id 0', ...order({ items: [item(0, 1)] }) },
  { name: 'order: product_id -3', ...order({ items: [item(-3, 1)] }) },
  { name: 'order: product_id 2^53', ...order({ items: [item(2 ** 53, 1)] }) },
  {
    name: 'order: product_id 9999999999999999999',
    method: 'POST',
    path: '/api/orders',
    as: 'customer',
    raw: json('{"items":[{"product_id":9999999999999999999,"quantity":1}]}'),
    status: 400,
  },
  { name: 'order: product_id with SQL', ...order({ items: [item('1; DROP TABLE orders', 1)] }) },
  { name: 'order: items null', ...order({ items: null }) },
  { name: 'order: items as an object', ...order({ items: { product_id: 1, quantity: 1 } }) },
  { name: 'order: a line as an array', ...order({ items: [[1, 2]] }) },
  { name: 'order: missing items', ...order({ products: [item(1, 1)] }) },
  {
    name: 'order: duplicate items key, the last one empty',
    method: 'POST',
    path: '/api/orders',
    as: 'customer',
    raw: json('{"items":[{"product_id":1,"quantity":1}],"items":[]}'),
    status: 400,
  },
  { name: 'order: unknown product', ...order({ items: [item(2147483600, 1)] }, 404) },
  {
    name: 'order: inactive product',
    method: 'POST',
    path: '/api/orders',
    as: 'customer',
    body: () => ({ items: [item(inactiveId, 1)] }),
    status: 409,
  } as unknown as Case,
  {
    name: 'order: more than the stock',
    method: 'POST',
    path: '/api/orders',
    as: 'customer',
    body: () => ({ items: [item(activeId, 1000)] }),
    status: 409,
  } as unknown as Case,
  {
    name: 'order: a 256-character Idempotency-Key',
    ...order({ items: [item(1, 1)] }),
    headers: { 'idempotency-key': 'k'.repeat(256) },
  },
  {
    name: 'order: as an admin',
    method: 'POST',
    path: '/api/orders',
    as: 'admin',
    body: { items: [item(1, 1)] },
    status: 403,
  },
  // reading and cancelling orders
  { name: 'my orders: page=0', method: 'GET', path: '/api/orders/me?page=0', as: 'customer', status: 400 },
  { name: 'all orders: status=lost', method: 'GET', path: '/api/orders?status=lost', as: 'admin', status: 400 },
  { name: 'all orders: status=PENDING', method: 'GET', path: '/api/orders?status=PENDING', as: 'admin', status: 400 },
  { name: 'all orders: user_id=-1', method: 'GET', path: '/api/orders?user_id=-1', as: 'admin', status: 400 },
  { name: 'all orders: as a customer', method: 'GET', path: '/api/orders', as: 'customer', status: 403 },
  { name: 'get order: id abc', method: 'GET', path: '/api/orders/abc', as: 'customer', status: 400 },
  { name: 'cancel: id 0', method: 'POST', path: '/api/orders/0/cancel', as: 'customer', status: 400 },
  { name: 'cancel: id 1e3', method: 'POST', path: '/api/orders/1e3/cancel', as: 'customer', status: 400 },
  { name: 'cancel: unknown id', method: 'POST', path: '/api/orders/2147483647/cancel', as: 'customer', status: 404 },
  { name: 'cancel: without a token', method: 'POST', path: () => `/api/orders/${orderId}/cancel`, status: 401 },
  // operations and unknown routes
  { name: 'retry: unknown queue', method: 'POST', path: '/api/admin/queues/nope/retry', as: 'admin', status: 400 },
  { name: 'queues: as a customer', method: 'GET', path: '/api/admin/queues', as: 'customer', status: 403 },
  { name: 'unknown route', method: 'GET', path: '/api/nothing', status: 404 },
  {
    name: 'unsupported method on a known path',
    method: 'PATCH',
    path: () => `/api/products/${activeId}`,
    as: 'admin',
    body: { name: 'x' },
    status: 404,
  },
  { name: 'path traversal', method: 'GET', path: '/api/products/..%2F..%2Fetc%2Fpasswd', status: 400 },
]

describe('bad-input battery', () => {
  test('has at least 60 distinct cases', () => {
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length)
    expect(cases.length).toBeGreaterThanOrEqual(60)
  })

  test.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const before = await fingerprint()
    const path = typeof c.path === 'function' ? c.path() : c.path
    const body = typeof c.body === 'function' ? (c.body as () => unknown)() : c.body
    const headers: Record<string, string> = { ...c.headers }
    if (c.raw) headers['content-type'] = c.raw.contentType
    const reply = await call(c.method, path, {
      token: tokens[c.as ?? 'anonymous'],
      body,
      rawBody: c.raw?.text,
      headers,
    })
    expectError(reply, c.status)
    expect(await fingerprint()).toEqual(before)
  })
})
