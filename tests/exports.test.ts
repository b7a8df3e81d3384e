import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { buildExport, LINES_PER_CHUNK } from '../src/modules/exports/jobs'
import { EXPORT_COLUMNS } from '../src/modules/exports/model'
import { housekeeping } from '../src/worker'
import { call, createAdmin, createProduct, expectError, registerCustomer, sql, waitFor } from './helpers'
import { startApi, startWorker, stopServices } from './processes'

// Order exports: asked for by an admin, built by the worker in chunks, stored in Postgres and
// served by any API process as RFC 4180 CSV with formula cells neutralised, until they expire.

type Session = { token: string; user: { id: number; email: string } }
let admin: Session
let customer: Session

beforeAll(async () => {
  admin = await createAdmin()
  customer = await registerCustomer('exports')
})

afterAll(async () => {
  await stopServices()
})

const HEADER = EXPORT_COLUMNS.join(',')
const ask = (body: unknown, token = admin.token) => call('POST', '/api/admin/exports', { token, body })
const status = (id: number, token = admin.token) => call('GET', `/api/admin/exports/${id}`, { token })
const download = (id: number, token = admin.token) => call('GET', `/api/admin/exports/${id}/download`, { token })
const countExports = async () => (await sql<{ count: number }[]>`SELECT count(*)::int AS count FROM exports`)[0]!.count

/** RFC 4180, strictly: what a spreadsheet reads back, row by row (CRLF line ends). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = []
  let row: string[] = []
  let cell = ''
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!
    if (quoted && char === '"' && text[i + 1] === '"') {
      cell += '"'
      i++
    } else if (quoted && char === '"') quoted = false
    else if (quoted) cell += char
    else if (char === '"') {
      if (cell !== '') throw new Error(`a quote inside an unquoted field at ${i}`)
      quoted = true
    } else if (char === ',') {
      row.push(cell)
      cell = ''
    } else if (char === '\r' && text[i + 1] === '\n') {
      row.push(cell)
      rows.push(row)
      row = []
      cell = ''
      i++
    } else if (char === '\n' || char === '\r') throw new Error(`a bare line break at ${i}`)
    else cell += char
  }
  if (cell !== '' || row.length) throw new Error('the last line has no CRLF')
  return rows
}

async function placeOrder(productId: number, quantity = 1, extra: Record<string, unknown> = {}) {
  const reply = await call('POST', '/api/orders', {
    token: customer.token,
    body: { items: [{ product_id: productId, quantity }], ...extra },
  })
  expect(reply.status).toBe(201)
  return reply.body as { id: number; created_at: string; total_cents: number }
}

async function built(body: Record<string, unknown>) {
  const asked = await ask(body)
  expect(asked.status).toBe(202)
  await buildExport(asked.body.id)
  const reply = await download(asked.body.id)
  expect(reply.status).toBe(200)
  return { id: asked.body.id as number, reply, rows: parseCsv(reply.body as string) }
}

describe('asking for an export', () => {
  test('202 queued, then built: the exact header, one line per order line, the file served as text/csv', async () => {
    const product = await createProduct(admin.token, { inventory: 100, price_cents: 1250, name: 'Plain mug' })
    const other = await createProduct(admin.token, { inventory: 100, price_cents: 300, name: 'Spoon' })
    const reply = await call('POST', '/api/orders', {
      token: customer.token,
      body: {
        items: [
          { product_id: other.id, quantity: 3 },
          { product_id: product.id, quantity: 2 },
        ],
        shipping_address: { name: 'Ada', line1: '1 Road', city: 'Paris', postal_code: '75001', country: 'FR' },
      },
    })
    const order = reply.body
    const asked = await ask({ type: 'orders', from: order.created_at, to: order.created_at })
    expect(asked.status).toBe(202)
    expect(asked.body).toEqual({
      id: expect.any(Number),
      type: 'orders',
      status: 'queued',
      created_at: expect.any(String),
    })
    expect((await status(asked.body.id)).body).toMatchObject({ status: 'queued', row_count: 0, download_url: null })
    expectError(await download(asked.body.id), 409)

    await buildExport(asked.body.id)
    const done = await status(asked.body.id)
    expect(done.body).toEqual({
      id: asked.body.id,
      type: 'orders',
      status: 'done',
      row_count: 2,
      created_at: asked.body.created_at,
      finished_at: expect.any(String),
      error: null,
      download_url: `/api/admin/exports/${asked.body.id}/download`,
    })
    const file = await download(asked.body.id)
    expect(file.status).toBe(200)
    expect(file.headers.get('content-type')).toBe('text/csv; charset=utf-8')
    expect(file.headers.get('content-disposition')).toBe(`attachment; filename="orders-export-${asked.body.id}.csv"`)
    expect(Number(file.headers.get('content-length'))).toBe(Buffer.byteLength(file.body))
    expect((file.body as string).split('\r\n')[0]).toBe(HEADER)
    const { email } = customer.user
    // Lines in order id, then product id order (the mug was created first).
    const line = (productId: number, name: string, quantity: number, unitPrice: number) =>
      [
        order.id,
        order.created_at,
        'pending',
        customer.user.id,
        email,
        order.total_cents,
        productId,
        name,
        quantity,
        unitPrice,
        quantity * unitPrice,
        'FR',
      ].map(String)
    expect(parseCsv(file.body)).toEqual([
      [...EXPORT_COLUMNS],
      line(product.id, 'Plain mug', 2, 1250),
      line(other.id, 'Spoon', 3, 300),
    ])
  })

  test('filters: from and to over created_at (inclusive), status', async () => {
    const product = await createProduct(admin.token, { inventory: 100 })
    const first = await placeOrder(product.id)
    await Bun.sleep(5)
    const second = await placeOrder(product.id)
    await call('POST', `/api/orders/${second.id}/cancel`, { token: customer.token })
    const orderIds = (rows: string[][]) => rows.slice(1).map((row) => Number(row[0]))
    expect(orderIds((await built({ type: 'orders', from: first.created_at, to: second.created_at })).rows)).toEqual([
      first.id,
      second.id,
    ])
    expect(orderIds((await built({ type: 'orders', from: second.created_at })).rows)).toEqual([second.id])
    expect(orderIds((await built({ type: 'orders', to: first.created_at, from: first.created_at })).rows)).toEqual([
      first.id,
    ])
    const cancelled = (await built({ type: 'orders', from: first.created_at, status: 'cancelled' })).rows
    expect(orderIds(cancelled)).toEqual([second.id])
    expect(cancelled[1]![2]).toBe('cancelled')
    // Nothing matched: the header alone.
    expect((await built({ type: 'orders', from: '2999-01-01' })).rows).toEqual([[...EXPORT_COLUMNS]])
  })
})

describe('RFC 4180 and formula cells', () => {
  test('commas, quotes and line breaks are quoted; cells a spreadsheet would run are neutralised', async () => {
    const names = [
      'Mug, large',
      'The "best" mug',
      'Line one\nLine two',
      '=HYPERLINK("http://evil.example","click")',
      '+1 mug',
      '-5 mug',
      '@SUM(A1:A2)',
      'plain',
    ]
    const products = []
    for (const name of names) {
      const product = await createProduct(admin.token, { inventory: 10, name: name.replace('\n', ' ') })
      // A line break cannot come through the API: an imported name can hold one.
      if (name.includes('\n')) await sql`UPDATE products SET name = ${name} WHERE id = ${product.id}`
      products.push(product)
    }
    const order = await call('POST', '/api/orders', {
      token: customer.token,
      body: { items: products.map((product) => ({ product_id: product.id, quantity: 1 })) },
    })
    const { rows, reply } = await built({ type: 'orders', from: order.body.created_at, to: order.body.created_at })
    expect(rows[0]).toEqual([...EXPORT_COLUMNS])
    expect(rows.slice(1).map((row) => row[7])).toEqual([
      'Mug, large',
      'The "best" mug',
      'Line one\nLine two',
      '\'=HYPERLINK("http://evil.example","click")',
      "'+1 mug",
      "'-5 mug",
      "'@SUM(A1:A2)",
      'plain',
    ])
    const text = reply.body as string
    expect(text).toContain(',"Mug, large",')
    expect(text).toContain(',"The ""best"" mug",')
    expect(text).toContain(',"Line one\nLine two",')
    expect(text).toContain(`,"'=HYPERLINK(""http://evil.example"",""click"")",`)
    expect(text).toContain(`,"'@SUM(A1:A2)",`)
    expect(text).toContain(',plain,')
    for (const row of rows) expect(row).toHaveLength(EXPORT_COLUMNS.length)
  })
})

describe('many lines', () => {
  test(`more lines than a chunk (${LINES_PER_CHUNK}): every line once, in order, in several chunks`, async () => {
    const product = await createProduct(admin.token, { inventory: 0, name: 'Bulk' })
    const otherProduct = await createProduct(admin.token, { inventory: 0, name: 'Bulk 2' })
    const orders = Math.ceil((LINES_PER_CHUNK * 2 + 17) / 2)
    const marker = new Date(Date.now() + 3_600_000).toISOString()
    // Written straight into the tables: as fast as a test can make them.
    const ids = await sql<{ id: number }[]>`
      INSERT INTO orders (user_id, total_cents, created_at)
      SELECT ${customer.user.id}, 300, ${marker}::timestamptz FROM generate_series(1, ${orders}) RETURNING id`
    await sql`
      INSERT INTO order_items (order_id, product_id, name, unit_price_cents, quantity, line_total_cents)
      SELECT o.id, p.id, p.name, 100 + (p.id = ${otherProduct.id})::int * 100, 1, 100 + (p.id = ${otherProduct.id})::int * 100
      FROM unnest(${ids.map((row) => row.id)}::int[]) AS o(id), products p WHERE p.id IN (${product.id}, ${otherProduct.id})`
    try {
      const { id, rows } = await built({ type: 'orders', from: marker, to: marker })
      expect(rows).toHaveLength(orders * 2 + 1)
      const keys = rows.slice(1).map((row) => `${row[0]}:${row[6]}`)
      expect(new Set(keys).size).toBe(orders * 2)
      const expected = ids.flatMap(({ id }) => [`${id}:${product.id}`, `${id}:${otherProduct.id}`])
      expect(keys).toEqual(expected)
      const [chunks] = await sql<
        { count: number }[]
      >`SELECT count(*)::int AS count FROM export_chunks WHERE export_id = ${id}`
      expect(chunks!.count).toBe(3)
      expect((await status(id)).body.row_count).toBe(orders * 2)
    } finally {
      await sql`DELETE FROM orders WHERE id = ANY(${ids.map((row) => row.id)}::int[])`
    }
  })

  test('two runs of one export at once (a stalled job and its replacement): one whole file, every line once', async () => {
    const product = await createProduct(admin.token, { inventory: 100 })
    const order = await placeOrder(product.id, 2)
    const asked = await ask({ type: 'orders', from: order.created_at, to: order.created_at })
    await Promise.all([buildExport(asked.body.id), buildExport(asked.body.id)])
    const rows = parseCsv((await download(asked.body.id)).body)
    expect(rows).toHaveLength(2)
    expect(rows[1]![0]).toBe(String(order.id))
    // Built: a third run changes nothing.
    expect((await buildExport(asked.body.id)).outcome).toBe('nothing to build')
  })

  test('a build that fails on its last attempt marks the export failed, with the reason', async () => {
    const asked = await ask({ type: 'orders' })
    await sql`UPDATE exports SET filters = '{"status": "lost"}' WHERE id = ${asked.body.id}`
    await expect(buildExport(asked.body.id, true)).rejects.toThrow()
    const reply = await status(asked.body.id)
    expect(reply.body).toMatchObject({ status: 'failed', download_url: null })
    expect(reply.body.error).toContain('lost')
    expectError(await download(asked.body.id), 409)
  })
})

describe('keeping and who may', () => {
  test('past EXPORT_TTL_HOURS: 404, and housekeeping deletes it with its file', async () => {
    const product = await createProduct(admin.token, { inventory: 10 })
    const order = await placeOrder(product.id)
    const { id } = await built({ type: 'orders', from: order.created_at })
    const [kept] = await sql<{ hours: number }[]>`
      SELECT round(extract(epoch FROM expires_at - finished_at) / 3600)::int AS hours FROM exports WHERE id = ${id}`
    expect(kept!.hours).toBe(24)
    await sql`UPDATE exports SET expires_at = now() - interval '1 second' WHERE id = ${id}`
    expectError(await status(id), 404)
    expectError(await download(id), 404)
    await housekeeping()
    expect(await sql`SELECT 1 FROM exports WHERE id = ${id}`).toHaveLength(0)
    expect(await sql`SELECT 1 FROM export_chunks WHERE export_id = ${id}`).toHaveLength(0)
  })

  test('401 without a token, 403 for a customer, 404 for an unknown export', async () => {
    const asked = await ask({ type: 'orders' })
    expectError(await call('POST', '/api/admin/exports', { body: { type: 'orders' } }), 401)
    expectError(await call('GET', `/api/admin/exports/${asked.body.id}`), 401)
    expectError(await call('GET', `/api/admin/exports/${asked.body.id}/download`), 401)
    expectError(await ask({ type: 'orders' }, customer.token), 403)
    expectError(await status(asked.body.id, customer.token), 403)
    expectError(await download(asked.body.id, customer.token), 403)
    expectError(await status(2_147_483_000), 404)
    expectError(await download(2_147_483_000), 404)
  })

  test.each([
    ['no type', {}],
    ['another type', { type: 'products' }],
    ['from that is not a date', { type: 'orders', from: 'yesterday' }],
    ['from in month 13', { type: 'orders', from: '2026-13-01' }],
    ['from after to', { type: 'orders', from: '2026-12-02', to: '2026-12-01' }],
    ['an unknown status', { type: 'orders', status: 'lost' }],
    ['to as a number', { type: 'orders', to: 20261201 }],
  ])('%s → 400, nothing queued', async (_, body) => {
    const before = await countExports()
    expectError(await ask(body), 400)
    expect(await countExports()).toBe(before)
  })
})

describe('through the queue, served by another API process', () => {
  test('a worker process builds it from the exports queue; a second API process serves the file', async () => {
    const api = await startApi({ QUEUE_PREFIX: process.env.QUEUE_PREFIX! })
    startWorker({ QUEUE_PREFIX: process.env.QUEUE_PREFIX!, WORKER_METRICS_PORT: '0' })
    const product = await createProduct(admin.token, { inventory: 10, name: 'Served elsewhere' })
    const order = await placeOrder(product.id, 3)
    const asked = await ask({ type: 'orders', from: order.created_at, to: order.created_at })
    const headers = { authorization: `Bearer ${admin.token}` }
    const done = await waitFor(async () => {
      const reply = await fetch(`${api.base}/api/admin/exports/${asked.body.id}`, { headers })
      const body = (await reply.json()) as { status: string }
      return body.status === 'done' ? body : undefined
    }, 30_000)
    expect(done).toMatchObject({ status: 'done', row_count: 1 })
    const file = await fetch(`${api.base}/api/admin/exports/${asked.body.id}/download`, { headers })
    expect(file.status).toBe(200)
    const rows = parseCsv(await file.text())
    expect(rows[0]!.join(',')).toBe(HEADER)
    expect(rows[1]![0]).toBe(String(order.id))
    expect(rows[1]![7]).toBe('Served elsewhere')
  })
})
