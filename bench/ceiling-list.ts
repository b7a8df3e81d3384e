// The read ceilings: a bare Bun.serve + postgres.js answering GET /api/products (a page and a
// count, in parallel; with `q`, the catalogue search: in stock, by price descending) and
// GET /api/products/:id with the same SQL and JSON as the API, uncached, and nothing else.
import postgres from 'postgres'
import { bench } from './config'

const sql = postgres(bench.databaseUrl, { max: bench.poolSize, onnotice: () => {} })
// Searches planned with their values, on connections of their own, as the API runs them (see db/client.ts).
const searchSql = postgres(bench.databaseUrl, {
  max: 4,
  connection: { plan_cache_mode: 'force_custom_plan' },
  onnotice: () => {},
})
const port = Number(process.argv[2])

Bun.serve({
  port,
  async fetch(request) {
    const url = new URL(request.url)
    const id = url.pathname.match(/^\/api\/products\/(\d+)$/)?.[1]
    if (id) {
      const [row] = await sql`SELECT id, name, description, price_cents, inventory::float8 AS inventory, is_active, created_at, updated_at
                              FROM products WHERE id = ${Number(id)} AND deleted_at IS NULL`
      return row ? Response.json(row) : Response.json({ error: 'Not found' }, { status: 404 })
    }
    const page = Number(url.searchParams.get('page') ?? 1)
    const limit = Math.min(Number(url.searchParams.get('limit') ?? 10), 50)
    const q = url.searchParams.get('q')
    if (q) {
      const search = searchSql`deleted_at IS NULL AND inventory > 0
        AND (name ILIKE ${`%${q}%`} OR description ILIKE ${`%${q}%`})`
      const [rows, [count]] = await Promise.all([
        searchSql`SELECT id, name, description, price_cents, inventory::float8 AS inventory, is_active, created_at, updated_at
                  FROM products WHERE ${search}
                  ORDER BY price_cents + 0 DESC NULLS LAST, id + 0 LIMIT ${limit} OFFSET ${(page - 1) * limit}`,
        searchSql<{ total: number }[]>`SELECT count(*)::int AS total FROM products WHERE ${search}`,
      ])
      return Response.json({
        data: rows,
        page,
        limit,
        total: count!.total,
        total_pages: Math.ceil(count!.total / limit),
      })
    }
    const [rows, [count]] = await Promise.all([
      sql`SELECT id, name, description, price_cents, inventory::float8 AS inventory, is_active, created_at, updated_at
          FROM products WHERE deleted_at IS NULL ORDER BY id LIMIT ${limit} OFFSET ${(page - 1) * limit}`,
      sql<{ total: number }[]>`SELECT count(*)::int AS total FROM products WHERE deleted_at IS NULL`,
    ])
    const total = count!.total
    return Response.json({ data: rows, page, limit, total, total_pages: Math.ceil(total / limit) })
  },
})
console.log('ready')
