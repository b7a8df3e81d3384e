import postgres from 'postgres'
import { SignJWT } from 'jose'
import { runMigrations } from '../src/db/migrate'
import { bench } from './config'

/** A fresh benchmark database: 10 000 products, 1 000 customers, one hot product. */
export async function seedBenchDatabase() {
  const url = new URL(bench.databaseUrl)
  const name = url.pathname.slice(1)
  const admin = postgres(Object.assign(new URL(bench.databaseUrl), { pathname: '/postgres' }).toString(), {
    max: 1,
    onnotice: () => {},
  })
  await admin`DROP DATABASE IF EXISTS ${admin(name)} WITH (FORCE)`
  await admin.end()
  await runMigrations(bench.databaseUrl)

  const db = postgres(bench.databaseUrl, { max: 1, onnotice: () => {} })
  try {
    await db`
      INSERT INTO products (name, description, price_cents, inventory, is_active)
      SELECT 'Product ' || g, 'Benchmark product ' || g, 100 + (g % 5000), ${bench.productStock}, g % 10 <> 0
      FROM generate_series(1, ${bench.products}) AS g`
    const [hot] = await db<{ id: number }[]>`
      INSERT INTO products (name, price_cents, inventory) VALUES ('Hot product', 999, ${bench.hotStock}) RETURNING id`
    const hash = await Bun.password.hash('bench-password', { algorithm: 'argon2id', memoryCost: 19_456, timeCost: 2 })
    const customers = await db<{ id: number }[]>`
      INSERT INTO users (email, password_hash)
      SELECT 'bench-' || g || '@example.com', ${hash} FROM generate_series(1, ${bench.customers}) AS g
      RETURNING id`
    // Each customer signs in once: its token names a session, as login's do.
    const sessions = await db<{ id: number; user_id: number }[]>`
      INSERT INTO sessions (user_id, expires_at)
      SELECT id, now() + interval '1 day' FROM unnest(${customers.map((row) => row.id)}::int[]) AS id
      RETURNING id, user_id`
    const sessionOf = new Map(sessions.map((row) => [row.user_id, row.id]))
    await db`VACUUM ANALYZE`
    const active = await db<{ id: number }[]>`SELECT id FROM products WHERE is_active AND id <> ${hot!.id} ORDER BY id`
    const key = new TextEncoder().encode(bench.jwtSecret)
    const tokens = await Promise.all(
      customers.map((customer) =>
        new SignJWT({ role: 'customer', sid: sessionOf.get(customer.id)!, jti: crypto.randomUUID() })
          .setProtectedHeader({ alg: 'HS256' })
          .setSubject(String(customer.id))
          .setIssuedAt()
          .setExpirationTime('2h')
          .sign(key),
      ),
    )
    return {
      hotProductId: hot!.id,
      activeProductIds: active.map((row) => row.id),
      customerIds: customers.map((row) => row.id),
      tokens,
    }
  } finally {
    await db.end()
  }
}
