import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { call, createAdmin, createProduct, expectError, registerCustomer, sql, waitFor } from './helpers'
import { startApi, stopServices } from './processes'
import { watchProductChanges } from '../src/modules/products/changes'
import { productChangesSince } from '../src/modules/products/queries'
import { searchLane } from '../src/modules/products/search-lane'

// Every query is scoped to this run's products by a marker word in their names, since other
// files' products share the table.

afterAll(stopServices)

const marker = `zq${process.pid}x${Date.now().toString(36)}`
let admin: { token: string }
type Product = {
  id: number
  name: string
  description: string | null
  price_cents: number
  inventory: number
  is_active: boolean
  created_at: string
}
let catalogue: Product[] = []

beforeAll(async () => {
  admin = await createAdmin()
  const specs = [
    { name: `Alpha ${marker} bottle`, price_cents: 500, inventory: 3 },
    { name: `Bravo ${marker}`, description: 'A steel BOTTLE for hikes', price_cents: 1500, inventory: 0 },
    { name: `Charlie ${marker}`, description: '100% cotton_shirt', price_cents: 1500, inventory: 7 },
    { name: `Alpha ${marker} bottle`, price_cents: 2500, inventory: 1, is_active: false },
    { name: `Delta ${marker}`, price_cents: 0, inventory: 0 },
    { name: `Echo ${marker}`, price_cents: 1500, inventory: 12 },
  ]
  for (const spec of specs) catalogue.push((await createProduct(admin.token, spec)) as Product)
  // Creation times a second apart (whole milliseconds, as the API shows them), two of them equal
  // for the created_at tie, and not in id order.
  const seconds = [5, 3, 1, 4, 2, 1]
  for (const [index, product] of catalogue.entries())
    await sql`UPDATE products SET created_at = timestamptz '2026-01-01T00:00:00Z' + make_interval(secs => ${seconds[index]!})
              WHERE id = ${product.id}`
  catalogue = (await Promise.all(
    catalogue.map(async (p) => (await call('GET', `/api/products/${p.id}`)).body),
  )) as Product[]
})

const list = (query: string) => call('GET', `/api/products?q=${marker}&limit=50&${query}`)
const idsOf = (reply: { body: { data: { id: number }[] } }) => reply.body.data.map((product) => product.id)
const ids = (products: Product[]) => products.map((product) => product.id)
const byId = (a: Product, b: Product) => a.id - b.id

/** A catalogue cache counter from /metrics: this process's, or another API's at `base`. */
async function cacheCount(kind: 'get' | 'list', result: 'hit' | 'miss', base?: string) {
  const metrics = base
    ? await (await fetch(`${base}/metrics`)).text()
    : ((await call('GET', '/metrics')).body as string)
  const counter = new RegExp(`catalogue_cache_requests_total\\{kind="${kind}",result="${result}"\\} (\\d+)`)
  return Number(metrics.match(counter)?.[1] ?? 0)
}

describe('filters', () => {
  test('q matches anywhere in the name or the description, whatever the case', async () => {
    const bottles = await call('GET', `/api/products?q=BoTtLe&limit=50`)
    const mine = idsOf(bottles).filter((id) => ids(catalogue).includes(id))
    expect(mine).toEqual([catalogue[0]!.id, catalogue[1]!.id, catalogue[3]!.id])
    // The marker sits in every name: 6 products.
    const all = await list('')
    expect(idsOf(all)).toEqual(ids(catalogue))
    expect(all.body).toMatchObject({ total: 6, total_pages: 1, page: 1, limit: 50 })
  })

  test('q takes %, _ and \\ literally', async () => {
    expect(idsOf(await call('GET', `/api/products?q=${encodeURIComponent('100% cotton_')}`))).toEqual([
      catalogue[2]!.id,
    ])
    expect(idsOf(await call('GET', `/api/products?q=${encodeURIComponent(`${marker}%`)}`))).toEqual([])
    expect(idsOf(await call('GET', `/api/products?q=${encodeURIComponent(`${marker.slice(0, 3)}_`)}`))).toEqual([])
  })

  test('price range, in stock, active, and all of them together (AND), with totals over the filtered set', async () => {
    const expectIds = async (query: string, keep: (p: Product) => boolean) => {
      const reply = await list(query)
      expect(reply.status).toBe(200)
      const expected = catalogue.filter(keep).sort(byId)
      expect({ query, ids: idsOf(reply), total: reply.body.total }).toEqual({
        query,
        ids: ids(expected),
        total: expected.length,
      })
    }
    await expectIds('min_price_cents=1500', (p) => p.price_cents >= 1500)
    await expectIds('max_price_cents=1500', (p) => p.price_cents <= 1500)
    await expectIds('min_price_cents=1500&max_price_cents=1500', (p) => p.price_cents === 1500)
    await expectIds('min_price_cents=0&max_price_cents=0', (p) => p.price_cents === 0)
    await expectIds('in_stock=true', (p) => p.inventory > 0)
    await expectIds('in_stock=false', (p) => p.inventory === 0)
    await expectIds('active=false', (p) => !p.is_active)
    await expectIds(
      'active=true&in_stock=true&min_price_cents=1000',
      (p) => p.is_active && p.inventory > 0 && p.price_cents >= 1000,
    )
    const paged = await list('in_stock=true&limit=2&page=2')
    expect(paged.body).toMatchObject({ total: 4, total_pages: 2, page: 2, limit: 2 })
    expect(idsOf(paged)).toEqual(ids(catalogue.filter((p) => p.inventory > 0)).slice(2, 4))
  })
  test('a search matching many products (over 100) pages and counts them the same way', async () => {
    const many = `mny${process.pid}w${Date.now().toString(36)}`
    const inserted = await sql<{ id: number }[]>`
      INSERT INTO products (name, price_cents, inventory)
      SELECT ${many} || ' ' || g, 100 * (g % 7), g % 3 FROM generate_series(1, 105) AS g
      RETURNING id`
    const expected = inserted.map((row) => row.id)
    const last = await call('GET', `/api/products?q=${many}&limit=10&page=11`)
    expect(last.body).toMatchObject({ total: 105, total_pages: 11, page: 11 })
    expect(idsOf(last)).toEqual(expected.slice(100))
    const cheapFirst = await call('GET', `/api/products?q=${many}&limit=50&sort=price_cents&in_stock=true`)
    const rows = await sql<{ id: number }[]>`
      SELECT id FROM products WHERE name LIKE ${`${many} %`} AND inventory > 0 ORDER BY price_cents, id`
    expect(cheapFirst.body.total).toBe(rows.length)
    expect(idsOf(cheapFirst)).toEqual(rows.slice(0, 50).map((row) => row.id))
  })
})

describe('sort', () => {
  const compare = (field: keyof Product, descending: boolean) => (a: Product, b: Product) => {
    const [x, y] = [a[field] as string | number, b[field] as string | number]
    if (x !== y) return (x < y ? -1 : 1) * (descending ? -1 : 1)
    return a.id - b.id
  }
  const sorts = ['id', '-id', 'name', '-name', 'price_cents', '-price_cents', 'created_at', '-created_at']
  test.each(sorts)('sort=%s, ties by id ascending', async (sort) => {
    const field = sort.replace('-', '') as keyof Product
    const expected = [...catalogue].sort(compare(field, sort.startsWith('-')))
    const reply = await list(`sort=${sort}`)
    expect(reply.status).toBe(200)
    expect(idsOf(reply)).toEqual(ids(expected))
  })

  test('the data has ties to break: names, prices and creation times repeat', () => {
    expect(new Set(catalogue.map((p) => p.name)).size).toBeLessThan(catalogue.length)
    expect(new Set(catalogue.map((p) => p.price_cents)).size).toBeLessThan(catalogue.length)
    expect(new Set(catalogue.map((p) => p.created_at)).size).toBeLessThan(catalogue.length)
  })
})

describe('bad query values → 400', () => {
  const bad = [
    'q=',
    `q=${'a'.repeat(101)}`,
    'min_price_cents=-1',
    'min_price_cents=1.5',
    'min_price_cents=abc',
    'max_price_cents=1e3',
    'max_price_cents=99999999999',
    'min_price_cents=10&max_price_cents=9',
    'in_stock=yes',
    'in_stock=1',
    'sort=price',
    'sort=-foo',
    'sort=ID',
    'sort=%2Bname',
    'active=maybe',
  ]
  test.each(bad)('%s', async (query) => {
    expectError(await call('GET', `/api/products?${query}`), 400)
  })
})

describe('HTTP caching', () => {
  test('list and get send an ETag and Cache-Control; a matching If-None-Match gets a 304 with no body', async () => {
    for (const path of [`/api/products?q=${marker}`, `/api/products/${catalogue[0]!.id}`]) {
      const first = await call('GET', path)
      const etag = first.headers.get('etag')!
      expect(etag).toMatch(/^"[0-9a-z]+"$/)
      const cacheControl = first.headers.get('cache-control')!
      expect(cacheControl).toContain('public')
      expect(Number(cacheControl.match(/max-age=(\d+)/)![1])).toBeLessThanOrEqual(5)
      for (const ifNoneMatch of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
        const again = await call('GET', path, { headers: { 'if-none-match': ifNoneMatch } })
        expect({ ifNoneMatch, status: again.status, body: again.body }).toEqual({
          ifNoneMatch,
          status: 304,
          body: undefined,
        })
        expect(again.headers.get('etag')).toBe(etag)
      }
      const stale = await call('GET', path, { headers: { 'if-none-match': '"not-it"' } })
      expect(stale.status).toBe(200)
      expect(stale.body).toEqual(first.body)
    }
  })

  test('an admin write changes the ETag and the answer at once, on the same process', async () => {
    const product = catalogue[4]!
    const path = `/api/products/${product.id}`
    const listPath = `/api/products?q=${marker}&sort=name`
    const [before, listBefore] = [await call('GET', path), await call('GET', listPath)]
    const updated = await call('PUT', path, { token: admin.token, body: { name: `Aardvark ${marker}` } })
    expect(updated.status).toBe(200)
    const [after, listAfter] = [await call('GET', path), await call('GET', listPath)]
    expect(after.body.name).toBe(`Aardvark ${marker}`)
    expect(after.headers.get('etag')).not.toBe(before.headers.get('etag'))
    expect(idsOf(listAfter)[0]).toBe(product.id)
    expect(listAfter.headers.get('etag')).not.toBe(listBefore.headers.get('etag'))
    const revalidated = await call('GET', path, { headers: { 'if-none-match': before.headers.get('etag')! } })
    expect(revalidated.status).toBe(200)
    catalogue[4] = after.body
  })

  test('a deleted product is gone at once from get and list', async () => {
    const doomed = (await createProduct(admin.token, { name: `Doomed ${marker}` })) as Product
    expect((await call('GET', `/api/products/${doomed.id}`)).status).toBe(200)
    expect(idsOf(await list(''))).toContain(doomed.id)
    expect((await call('DELETE', `/api/products/${doomed.id}`, { token: admin.token })).status).toBe(204)
    expectError(await call('GET', `/api/products/${doomed.id}`), 404)
    expect(idsOf(await list(''))).not.toContain(doomed.id)
  })

  test('inventory follows orders and cancels: at once for the product, within a second in lists; orders use the live row', async () => {
    const product = (await createProduct(admin.token, { name: `Stocked ${marker}`, inventory: 5 })) as Product
    const path = `/api/products/${product.id}`
    const listPath = `/api/products?q=Stocked%20${marker}&in_stock=true`
    const before = await call('GET', path)
    expect(before.body.inventory).toBe(5)
    expect(idsOf(await call('GET', listPath))).toEqual([product.id])
    const customer = await registerCustomer()
    const order = await call('POST', '/api/orders', {
      token: customer.token,
      body: { items: [{ product_id: product.id, quantity: 5 }] },
    })
    expect(order.status).toBe(201)
    // The list may still show 5 in stock for up to a second, but an order takes stock from the live row.
    const another = await call('POST', '/api/orders', {
      token: customer.token,
      body: { items: [{ product_id: product.id, quantity: 1 }] },
    })
    expect(another.status).toBe(409)
    const soldOut = await call('GET', path)
    expect(soldOut.body.inventory).toBe(0)
    expect(soldOut.headers.get('etag')).not.toBe(before.headers.get('etag'))
    const started = Date.now()
    await waitFor(async () => idsOf(await call('GET', listPath)).length === 0 || undefined, 3_000, 25)
    expect(Date.now() - started).toBeLessThanOrEqual(1_100)

    expect((await call('POST', `/api/orders/${order.body.id}/cancel`, { token: customer.token })).status).toBe(200)
    expect((await call('GET', path)).body.inventory).toBe(5)
    const restartedAt = Date.now()
    await waitFor(async () => idsOf(await call('GET', listPath)).length === 1 || undefined, 3_000, 25)
    expect(Date.now() - restartedAt).toBeLessThanOrEqual(1_100)
  })

  test('another API process sees an admin write within a second', async () => {
    const other = await startApi({ QUEUE_PREFIX: process.env.QUEUE_PREFIX! })
    const product = catalogue[1]!
    const read = () =>
      fetch(`${other.base}/api/products/${product.id}`).then((response) => response.json() as Promise<Product>)
    // The other process has the product in memory before the write.
    for (let i = 0; i < 3; i++) expect((await read()).price_cents).toBe(product.price_cents)
    const updated = await call('PUT', `/api/products/${product.id}`, {
      token: admin.token,
      body: { price_cents: 1499 },
    })
    expect(updated.status).toBe(200)
    const writtenAt = Date.now()
    await waitFor(async () => (await read()).price_cents === 1499 || undefined, 3_000, 10)
    expect(Date.now() - writtenAt).toBeLessThan(1_000)
    catalogue[1] = updated.body
  })

  test('another API process shows stock taken by orders here within a second, and keeps serving it from memory', async () => {
    const other = await startApi({ QUEUE_PREFIX: process.env.QUEUE_PREFIX! })
    const product = (await createProduct(admin.token, { name: `Shared ${marker}`, inventory: 20 })) as Product
    const read = async () => (await (await fetch(`${other.base}/api/products/${product.id}`)).json()) as Product
    const search = async () =>
      (await (await fetch(`${other.base}/api/products?q=Shared%20${marker}&in_stock=true`)).json()) as {
        data: Product[]
      }
    for (let i = 0; i < 2; i++) {
      expect((await read()).inventory).toBe(20)
      expect((await search()).data.map((p) => p.inventory)).toEqual([20])
      await Bun.sleep(1_500)
    }
    const hits = await cacheCount('get', 'hit', other.base)
    expect((await read()).inventory).toBe(20)
    expect(await cacheCount('get', 'hit', other.base)).toBe(hits + 1)

    const customer = await registerCustomer()
    const orders = await Promise.all(
      Array.from({ length: 4 }, () =>
        call('POST', '/api/orders', {
          token: customer.token,
          body: { items: [{ product_id: product.id, quantity: 5 }] },
        }),
      ),
    )
    expect(orders.map((order) => order.status)).toEqual([201, 201, 201, 201])
    const soldAt = Date.now()
    await waitFor(
      async () => ((await read()).inventory === 0 && (await search()).data.length === 0) || undefined,
      3_000,
      10,
    )
    expect(Date.now() - soldAt).toBeLessThanOrEqual(1_100)
  })

  test('an unchanged product is served from memory past a second; one changed by any writer is re-read within a second', async () => {
    const product = (await createProduct(admin.token, { name: `Quiet ${marker}`, inventory: 9 })) as Product
    const path = `/api/products/${product.id}`
    // Twice: a read begun before the polls' first look is only kept for a second.
    for (let i = 0; i < 2; i++) {
      expect((await call('GET', path)).body.inventory).toBe(9)
      await Bun.sleep(1_500)
    }
    const [hits, misses] = [await cacheCount('get', 'hit'), await cacheCount('get', 'miss')]
    expect((await call('GET', path)).body.inventory).toBe(9)
    expect(await cacheCount('get', 'hit')).toBe(hits + 1)
    expect(await cacheCount('get', 'miss')).toBe(misses)

    // A writer that tells no one: another replica's order, a script.
    await sql`UPDATE products SET inventory = 4, updated_at = now() WHERE id = ${product.id}`
    const writtenAt = Date.now()
    await waitFor(async () => (await call('GET', path)).body.inventory === 4 || undefined, 3_000, 10)
    expect(Date.now() - writtenAt).toBeLessThanOrEqual(1_100)
  })

  test('a search stays in memory while its products do not change; a change by any writer shows within a second', async () => {
    const word = `Seek${marker}`
    const [first, second] = [
      (await createProduct(admin.token, { name: `${word} one`, inventory: 2, price_cents: 300 })) as Product,
      (await createProduct(admin.token, { name: `Other ${marker}`, inventory: 2, price_cents: 200 })) as Product,
    ]
    const path = `/api/products?q=${word}&in_stock=true&sort=-price_cents`
    for (let i = 0; i < 2; i++) {
      expect(idsOf(await call('GET', path))).toEqual([first.id])
      await Bun.sleep(1_500)
    }
    const hits = await cacheCount('list', 'hit')
    expect(idsOf(await call('GET', path))).toEqual([first.id])
    expect(await cacheCount('list', 'hit')).toBe(hits + 1)

    // Writers that tell no one: a sale on another replica, then a script renaming a product.
    await sql`UPDATE products SET inventory = 0, updated_at = now() WHERE id = ${first.id}`
    let writtenAt = Date.now()
    await waitFor(async () => (await call('GET', path)).body.total === 0 || undefined, 3_000, 10)
    expect(Date.now() - writtenAt).toBeLessThanOrEqual(1_100)
    await sql`UPDATE products SET name = ${`${word} two`} WHERE id = ${second.id}`
    writtenAt = Date.now()
    await waitFor(async () => idsOf(await call('GET', path))[0] === second.id || undefined, 3_000, 10)
    expect(Date.now() - writtenAt).toBeLessThanOrEqual(1_100)
    expect((await call('GET', path)).body).toMatchObject({ total: 1, data: [{ id: second.id, name: `${word} two` }] })
  })

  test('a list without a stock filter stays in memory until a product it shows or the set it pages through changes, by any writer', async () => {
    // A price no other product has: a plain list (no q), counted and paged by Postgres.
    const price = 900_000_000 + (process.pid % 1_000_000)
    const path = `/api/products?min_price_cents=${price}&max_price_cents=${price}&limit=2`
    const made = await sql<{ id: number }[]>`
      INSERT INTO products (name, price_cents, inventory)
      SELECT ${`Listed ${marker} `} || n, ${price}, 5 FROM generate_series(1, 3) AS n RETURNING id`
    const elsewhere = (await createProduct(admin.token, { name: `Unlisted ${marker}`, inventory: 5 })) as Product
    try {
      const shown = made.map(({ id }) => id).slice(0, 2)
      for (let i = 0; i < 2; i++) {
        expect((await call('GET', path)).body).toMatchObject({ total: 3, data: shown.map((id) => ({ id })) })
        await Bun.sleep(1_500)
      }
      let [hits, misses] = [await cacheCount('list', 'hit'), await cacheCount('list', 'miss')]
      expect((await call('GET', path)).body.total).toBe(3)
      expect(await cacheCount('list', 'hit')).toBe(hits + 1)

      // Stock of a product the page does not show: the page stays, past the poll that reports it.
      await sql`UPDATE products SET inventory = 1, updated_at = now() WHERE id IN (${made[2]!.id}, ${elsewhere.id})`
      await Bun.sleep(1_200)
      ;[hits, misses] = [await cacheCount('list', 'hit'), await cacheCount('list', 'miss')]
      expect((await call('GET', path)).body.total).toBe(3)
      expect([await cacheCount('list', 'hit'), await cacheCount('list', 'miss')]).toEqual([hits + 1, misses])

      // Stock of a product it shows, then a product added to the set: each within a second.
      await sql`UPDATE products SET inventory = 2, updated_at = now() WHERE id = ${shown[1]!}`
      let writtenAt = Date.now()
      await waitFor(async () => (await call('GET', path)).body.data[1].inventory === 2 || undefined, 3_000, 10)
      expect(Date.now() - writtenAt).toBeLessThanOrEqual(1_100)
      const [added] = await sql<{ id: number }[]>`
        INSERT INTO products (name, price_cents, inventory) VALUES (${`Listed ${marker} 4`}, ${price}, 5) RETURNING id`
      made.push(added!)
      writtenAt = Date.now()
      await waitFor(async () => (await call('GET', path)).body.total === 4 || undefined, 3_000, 10)
      expect(Date.now() - writtenAt).toBeLessThanOrEqual(1_100)
    } finally {
      await sql`DELETE FROM products WHERE id = ANY(${[...made.map(({ id }) => id), elsewhere.id]})`
    }
  })

  test('the cache keeps within CATALOGUE_CACHE_MB: past it the least recently used answers go', async () => {
    const { base } = await startApi({
      CATALOGUE_CACHE_MB: '1',
      QUEUE_PREFIX: `cache-budget-${process.pid}-${Date.now()}`,
    })
    // 1 500 products of about 1.5 KB each: the products' 45 % of a megabyte holds a fraction.
    const made = await sql<{ id: number }[]>`
      INSERT INTO products (name, description, price_cents, inventory)
      SELECT ${`Budget ${marker} `} || n, repeat('x', 1000), 100, 1 FROM generate_series(1, 1500) AS n RETURNING id`
    try {
      for (let i = 0; i < made.length; i += 50)
        await Promise.all(
          made.slice(i, i + 50).map(({ id }) => fetch(`${base}/api/products/${id}`).then((r) => r.text())),
        )
      const metrics = await (await fetch(`${base}/metrics`)).text()
      const bytes = (part: string) =>
        Number(metrics.match(new RegExp(`catalogue_cache_bytes\\{part="${part}"\\} (\\d+)`))?.[1])
      expect(bytes('products')).toBeGreaterThan(0.4 * 2 ** 20)
      expect(bytes('products')).toBeLessThanOrEqual(0.45 * 2 ** 20)
      expect(bytes('products') + bytes('pages') + bytes('matches') + bytes('totals')).toBeLessThanOrEqual(2 ** 20)
    } finally {
      await sql`DELETE FROM products WHERE id IN ${sql(made.map(({ id }) => id))}`
    }
  })

  test('cache hits and misses are counted in /metrics', async () => {
    await call('GET', `/api/products/${catalogue[0]!.id}`)
    await call('GET', `/api/products/${catalogue[0]!.id}`)
    const metrics = (await call('GET', '/metrics')).body as string
    expect(metrics).toMatch(/catalogue_cache_requests_total\{kind="get",result="hit"\} [1-9]/)
    expect(metrics).toMatch(/catalogue_cache_requests_total\{kind="list",result="miss"\} [1-9]/)
  })
})

describe('uncached searches cost Postgres: bounded per client and in time', () => {
  const search = (base: string, q: string, from: string, page = 1) =>
    fetch(`${base}/api/products?q=${encodeURIComponent(q)}&page=${page}`, { headers: { 'x-forwarded-for': from } })

  test('past RATE_LIMIT_SEARCH_MAX uncached searches an address gets 429 with Retry-After; cached answers and other addresses go on', async () => {
    const { base } = await startApi({
      RATE_LIMIT_SEARCH_MAX: '3',
      TRUST_PROXY: 'true',
      QUEUE_PREFIX: `search-limit-${process.pid}-${Date.now()}`,
    })
    const word = `${marker}lim`
    for (let page = 1; page <= 3; page++) expect((await search(base, word, '198.51.100.7', page)).status).toBe(200)
    const limited = await search(base, word, '198.51.100.7', 4)
    expect(limited.status).toBe(429)
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(((await limited.json()) as { error: string }).error).toMatch(/Too many searches/)
    // The same address still gets what is cached and plain lists (served by indexes); another
    // address is not limited.
    expect((await search(base, word, '198.51.100.7', 1)).status).toBe(200)
    const plain = await fetch(`${base}/api/products?page=7&sort=-price_cents`, {
      headers: { 'x-forwarded-for': '198.51.100.7' },
    })
    expect(plain.status).toBe(200)
    expect((await search(base, word, '198.51.100.8', 4)).status).toBe(200)
  })

  test('a search matching few products is read once: its other pages and stock filters are made in memory', async () => {
    const { base } = await startApi({
      CATALOGUE_STATEMENT_TIMEOUT_MS: '300',
      QUEUE_PREFIX: `search-pages-${process.pid}-${Date.now()}`,
    })
    const word = `${marker}few`
    for (const inventory of [0, 3, 5])
      await createProduct(admin.token, { name: `${word} ${inventory}`, inventory, price_cents: 100 })
    expect((await search(base, word, '198.51.100.10')).status).toBe(200)
    const locker = await sql.reserve()
    try {
      await locker`BEGIN`
      await locker`LOCK TABLE products IN ACCESS EXCLUSIVE MODE`
      // Postgres answers nothing now: these come from the matches read above.
      const second = await fetch(`${base}/api/products?q=${word}&limit=2&page=2`)
      expect(second.status).toBe(200)
      expect(await second.json()).toMatchObject({ total: 3, total_pages: 2, data: [{ name: `${word} 5` }] })
      const inStock = await fetch(`${base}/api/products?q=${word}&in_stock=true`)
      expect(await inStock.json()).toMatchObject({ total: 2 })
    } finally {
      await locker`ROLLBACK`.catch(() => {})
      locker.release()
    }
  })

  test('a search the database cannot answer within CATALOGUE_STATEMENT_TIMEOUT_MS gets 503 with Retry-After, never a 500 or a hang', async () => {
    const { base } = await startApi({
      CATALOGUE_STATEMENT_TIMEOUT_MS: '300',
      QUEUE_PREFIX: `search-timeout-${process.pid}-${Date.now()}`,
    })
    const locker = await sql.reserve()
    let replies: Response[]
    try {
      await locker`BEGIN`
      await locker`LOCK TABLE products IN ACCESS EXCLUSIVE MODE`
      // More searches than may wait for the catalogue's connections at once.
      replies = await Promise.all(
        Array.from({ length: 20 }, (_, i) => search(base, `${marker}slow${i}`, '198.51.100.9')),
      )
    } finally {
      await locker`ROLLBACK`.catch(() => {})
      locker.release()
    }
    expect(replies.map((reply) => reply.status)).toEqual(Array(20).fill(503))
    for (const reply of replies) {
      expect(reply.headers.get('retry-after')).toBe('1')
      expect(((await reply.json()) as { error: string }).error).toMatch(/busy/)
    }
    expect((await search(base, `${marker}slow0`, '198.51.100.9')).status).toBe(200)
  })

  test('a flood of table-scanning searches waits out the timeout before its 503s, instead of being refused at once and asking again', async () => {
    const timeoutMs = 400
    const { base } = await startApi({
      CATALOGUE_STATEMENT_TIMEOUT_MS: String(timeoutMs),
      TRUST_PROXY: 'true',
      QUEUE_PREFIX: `search-flood-${process.pid}-${Date.now()}`,
    })
    const locker = await sql.reserve()
    let answers: { status: number; tookMs: number }[]
    try {
      await locker`BEGIN`
      await locker`LOCK TABLE products IN ACCESS EXCLUSIVE MODE`
      // Two-letter searches scan the table, so they take turns; 40 addresses, so no per-address limit.
      answers = await Promise.all(
        Array.from({ length: 40 }, async (_, i) => {
          const began = performance.now()
          const reply = await search(base, 'zq', `198.51.100.${100 + i}`, i + 1)
          await reply.body?.cancel()
          return { status: reply.status, tookMs: performance.now() - began }
        }),
      )
    } finally {
      await locker`ROLLBACK`.catch(() => {})
      locker.release()
    }
    expect(answers.map((answer) => answer.status)).toEqual(Array(40).fill(503))
    // A lower bound only: each was held until its deadline, none answered before it.
    expect(Math.min(...answers.map((answer) => answer.tookMs))).toBeGreaterThanOrEqual(timeoutMs - 20)
  })
})

describe('the search lane', () => {
  const refuse = () => new Error('refused')
  const pause = (ms: number) => Bun.sleep(ms)

  test('searches take turns, and after each the lane rests three times as long as it took', async () => {
    const lane = searchLane({ maxWaiting: 16, patienceMs: 10_000, refuse })
    const spans: { began: number; ended: number }[] = []
    let running = 0
    let mostAtOnce = 0
    const search = async () => {
      mostAtOnce = Math.max(mostAtOnce, ++running)
      const began = performance.now()
      await pause(40)
      spans.push({ began, ended: performance.now() })
      running--
    }
    await Promise.all(Array.from({ length: 4 }, () => lane.take(search)))
    expect(mostAtOnce).toBe(1)
    for (let i = 1; i < spans.length; i++) {
      const before = spans[i - 1]!
      expect(spans[i]!.began - before.ended).toBeGreaterThanOrEqual(3 * (before.ended - before.began) - 1)
    }
  })

  test('past maxWaiting a search is refused at once; one whose turn comes after patienceMs is never run', async () => {
    const lane = searchLane({ maxWaiting: 2, patienceMs: 50, refuse })
    const ran: number[] = []
    const outcomes = await Promise.allSettled(
      [0, 1, 2].map((n) =>
        lane.take(async () => {
          ran.push(n)
          await pause(100)
        }),
      ),
    )
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'rejected', 'rejected'])
    expect(ran).toEqual([0])
    expect(lane.full()).toBe(false)
  })
})

describe('product change polling', () => {
  const changedIn: (ReadonlySet<number> | 'all')[] = []
  const watcher = watchProductChanges({ onChange: (changed) => changedIn.push(changed), wanted: () => true })
  afterAll(() => watcher.stop())
  const polled = (count: number) => waitFor(() => watcher.completed() >= count || undefined, 5_000, 10)

  test('reports every product written since the previous poll, by any connection, and vouches for reads begun meanwhile', async () => {
    const [quiet, busy] = [catalogue[2]!, catalogue[5]!]
    watcher.ensureRunning()
    // The first poll only takes its bearings: nothing read before it is vouched for.
    expect(watcher.vouches(0, performance.now(), 1_000)).toBe(false)
    await polled(2)
    const readBegan = watcher.completed()
    await sql`UPDATE products SET inventory = inventory + 1 WHERE id = ${busy.id}`
    await waitFor(() => changedIn.some((changed) => changed !== 'all' && changed.has(busy.id)) || undefined, 5_000, 10)
    expect(changedIn).not.toContain('all')
    expect(changedIn.flatMap((changed) => [...changed])).not.toContain(quiet.id)
    expect(watcher.changedAfter(readBegan, [busy.id])).toBe(true)
    expect(watcher.changedAfter(readBegan, [quiet.id])).toBe(false)
    expect(watcher.vouches(readBegan, performance.now(), 1_000)).toBe(true)
    // Long after the last poll it vouches for nothing.
    expect(watcher.vouches(readBegan, performance.now() + 5_000, 1_000)).toBe(false)
    await sql`UPDATE products SET inventory = inventory - 1 WHERE id = ${busy.id}`
  })

  test('the feed compares 64-bit transaction ids: ids 2^31 and 2^32 apart keep their order (no wraparound)', async () => {
    // Rows as the triggers write them, with ids of later epochs: a 32-bit comparison (age(), as
    // the polls once used) would put 2^32 + 7 before 1 000. Product ids no product has.
    const [early, inProgress, nextEpoch, farther] = [2_100_000_001, 2_100_000_002, 2_100_000_003, 2_100_000_004]
    const rows = [
      [early, 1_000n],
      [inProgress, 2n ** 31n + 5n],
      [nextEpoch, 2n ** 32n + 7n],
      [farther, 2n ** 33n + 3n],
    ] as const
    try {
      for (const [productId, xid] of rows)
        await sql`INSERT INTO product_changes (product_id, xid) VALUES (${productId}, ${String(xid)}::xid8)`
      // A previous poll's snapshot: xmin 2^31, xmax 2^32 + 3, with 2^31 + 5 still running then.
      const { changed } = await productChangesSince(`${2n ** 31n}:${2n ** 32n + 3n}:${2n ** 31n + 5n}`)
      expect(changed.filter((id) => id > 2_100_000_000).sort()).toEqual([inProgress, nextEpoch, farther])
      // One epoch later everything before it is old news.
      const later = await productChangesSince(`${2n ** 33n + 4n}:${2n ** 33n + 4n}:`)
      expect(later.changed.filter((id) => id > 2_100_000_000)).toEqual([])
    } finally {
      await sql`DELETE FROM product_changes WHERE product_id IN (${early}, ${inProgress}, ${nextEpoch}, ${farther})`
    }
  })

  test('a transaction held open elsewhere holds nothing back: a product is reported once, in the poll after its write', async () => {
    const [quiet, busy] = [catalogue[3]!, catalogue[4]!]
    const idle = await sql.reserve()
    try {
      // An idle transaction that has written (so it has an id): a report, a stuck session.
      await idle`BEGIN`
      await idle`SELECT pg_current_xact_id()`
      watcher.ensureRunning()
      await polled(watcher.completed() + 2)
      const from = changedIn.length
      await sql`UPDATE products SET inventory = inventory + 1 WHERE id = ${busy.id}`
      await polled(watcher.completed() + 6)
      const reports = changedIn.slice(from).filter((changed) => changed !== 'all')
      expect(reports.filter((changed) => changed.has(busy.id))).toHaveLength(1)
      expect(reports.some((changed) => changed.has(quiet.id))).toBe(false)
    } finally {
      await idle`ROLLBACK`.catch(() => {})
      idle.release()
      await sql`UPDATE products SET inventory = inventory - 1 WHERE id = ${busy.id}`
    }
  })

  test('a write committed after several polls is reported when it commits (the feed is read by transaction, not by arrival)', async () => {
    const late = catalogue[1]!
    const writer = await sql.reserve()
    try {
      await writer`BEGIN`
      await writer`UPDATE products SET inventory = inventory + 1 WHERE id = ${late.id}`
      watcher.ensureRunning()
      const from = changedIn.length
      await polled(watcher.completed() + 3)
      expect(changedIn.slice(from).some((changed) => changed !== 'all' && changed.has(late.id))).toBe(false)
      await writer`COMMIT`
      const reported = await waitFor(
        () => changedIn.slice(from).some((changed) => changed !== 'all' && changed.has(late.id)) || undefined,
        5_000,
        10,
      )
      expect(reported).toBe(true)
    } finally {
      await writer`ROLLBACK`.catch(() => {})
      writer.release()
      await sql`UPDATE products SET inventory = inventory - 1 WHERE id = ${late.id}`
    }
  })

  test('a write other than stock, by anyone, counts as every product changed; stock alone does not move the version', async () => {
    const version = async () => (await sql`SELECT version FROM catalogue_version`)[0]!.version as string
    const before = await version()
    await sql`UPDATE products SET inventory = inventory + 1, updated_at = now() WHERE id = ${catalogue[0]!.id}`
    await sql`UPDATE products SET inventory = inventory - 1, updated_at = now() WHERE id = ${catalogue[0]!.id}`
    expect(await version()).toBe(before)
    const pollsBefore = watcher.completed()
    await sql`UPDATE products SET description = description WHERE id = ${catalogue[0]!.id}`
    expect(BigInt(await version())).toBe(BigInt(before) + 1n)
    await waitFor(() => changedIn.includes('all') || undefined, 5_000, 10)
    expect(watcher.changedAfter(pollsBefore, [catalogue[5]!.id])).toBe(true)
  })

  test('with the feed unreadable, the API warns, says catalogue_change_feed_up 0, and keeps answers a second at most', async () => {
    const role = `feedless_${process.pid}_${Date.now()}`
    const product = catalogue[2]!
    const url = new URL(process.env.DATABASE_URL!)
    url.username = role
    await sql.unsafe(`CREATE ROLE ${role} LOGIN`)
    let api: Awaited<ReturnType<typeof startApi>> | undefined
    try {
      await sql.unsafe(`GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role}`)
      await sql.unsafe(`REVOKE SELECT ON product_changes FROM ${role}`)
      api = await startApi(
        { DATABASE_URL: url.toString(), QUEUE_PREFIX: `feedless-${process.pid}-${Date.now()}` },
        { log: true },
      )
      const { base } = api
      const inventory = async () =>
        ((await (await fetch(`${base}/api/products/${product.id}`)).json()) as Product).inventory
      const before = await inventory()
      const feedDown = await waitFor(
        async () => (await (await fetch(`${base}/metrics`)).text()).includes('catalogue_change_feed_up 0') || undefined,
        5_000,
      )
      expect(feedDown).toBe(true)
      expect(api.logs().some((line) => line.level === 40 && /change polling failed/.test(line.msg))).toBe(true)
      await sql`UPDATE products SET inventory = inventory + 5 WHERE id = ${product.id}`
      try {
        expect(await waitFor(async () => (await inventory()) === before + 5 || undefined, 3_000)).toBe(true)
      } finally {
        await sql`UPDATE products SET inventory = inventory - 5 WHERE id = ${product.id}`
      }
    } finally {
      api?.child.kill()
      await api?.child.exited
      await sql.unsafe(`DROP OWNED BY ${role}`)
      await sql.unsafe(`DROP ROLE ${role}`)
    }
  })

  test('an API that can read the feed says catalogue_change_feed_up 1', async () => {
    await call('GET', `/api/products/${catalogue[0]!.id}`)
    const up = await waitFor(
      async () => ((await call('GET', '/metrics')).body as string).includes('catalogue_change_feed_up 1') || undefined,
      5_000,
    )
    expect(up).toBe(true)
  })
})
