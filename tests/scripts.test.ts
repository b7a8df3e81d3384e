import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import postgres from 'postgres'

// The package.json entry points, run as the operator runs them, against a database of their own.
const root = new URL('..', import.meta.url).pathname
const url = new URL(process.env.DATABASE_URL!)
const databaseName = `${process.env.TEST_DATABASE_NAME}_scripts`
url.pathname = `/${databaseName}`
const databaseUrl = url.toString()

const env = {
  PATH: process.env.PATH!,
  HOME: process.env.HOME ?? '/tmp',
  DATABASE_URL: databaseUrl,
  JWT_SECRET: 'scripts-test-secret',
  ADMIN_EMAIL: 'Boss@Example.com',
  ADMIN_PASSWORD: 'first-password',
  LOG_LEVEL: 'warn',
}

async function run(script: string[], extraEnv: Record<string, string> = {}) {
  const child = Bun.spawn(['bun', 'run', '--silent', ...script], {
    cwd: root,
    env: { ...env, ...extraEnv },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const code = await child.exited
  return { code, stdout: await new Response(child.stdout).text(), stderr: await new Response(child.stderr).text() }
}

let db: postgres.Sql

beforeAll(async () => {
  const maintenance = new URL(databaseUrl)
  maintenance.pathname = '/postgres'
  const admin = postgres(maintenance.toString(), { max: 1, onnotice: () => {} })
  await admin`DROP DATABASE IF EXISTS ${admin(databaseName)} WITH (FORCE)`
  await admin.end()
  db = postgres(databaseUrl, { max: 1, onnotice: () => {} })
})

afterAll(async () => {
  await db?.end()
})

describe('bun run db:migrate / db:seed / user:role', () => {
  test('db:migrate creates the missing database and applies every migration; a second run is a no-op', async () => {
    expect((await run(['db:migrate'])).code).toBe(0)
    expect((await run(['db:migrate'])).code).toBe(0)
    const tables = await db<
      { table_name: string }[]
    >`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`
    expect(tables.map((row) => row.table_name)).toEqual(
      expect.arrayContaining(['users', 'products', 'orders', 'order_items']),
    )
  })

  test('the database refuses negative inventory and prices, zero quantities and duplicate emails in any case', async () => {
    await expect(db`INSERT INTO products (name, price_cents, inventory) VALUES ('x', 1, -1)`).rejects.toThrow()
    await expect(db`INSERT INTO products (name, price_cents) VALUES ('x', -1)`).rejects.toThrow()
    await db`INSERT INTO users (email, password_hash) VALUES ('case@example.com', 'x')`
    await expect(db`INSERT INTO users (email, password_hash) VALUES ('CASE@example.com', 'x')`).rejects.toThrow()
    const [product] = await db`INSERT INTO products (name, price_cents) VALUES ('y', 1) RETURNING id`
    const [user] = await db`SELECT id FROM users LIMIT 1`
    const [order] = await db`INSERT INTO orders (user_id, total_cents) VALUES (${user!.id}, 0) RETURNING id`
    await expect(
      db`INSERT INTO order_items (order_id, product_id, name, unit_price_cents, quantity, line_total_cents)
         VALUES (${order!.id}, ${product!.id}, 'y', 1, 0, 0)`,
    ).rejects.toThrow()
  })

  test('db:seed loads at least 12 products, some inactive, and the admin; running it again changes nothing', async () => {
    expect((await run(['db:seed'])).code).toBe(0)
    const count = async () =>
      (await db`SELECT count(*)::int AS n, count(*) FILTER (WHERE NOT is_active)::int AS inactive FROM products`)[0]!
    const first = await count()
    expect(first.n).toBeGreaterThanOrEqual(12)
    expect(first.inactive).toBeGreaterThan(0)
    expect((await run(['db:seed'])).code).toBe(0)
    expect(await count()).toEqual(first)
    const admins = [...(await db`SELECT email, role FROM users WHERE email = 'boss@example.com'`)]
    expect(admins).toEqual([{ email: 'boss@example.com', role: 'admin' }])
  })

  test('db:seed run by four replicas at once adds each sample product once', async () => {
    await db`DELETE FROM products WHERE id NOT IN (SELECT product_id FROM order_items)`
    // The table locked until all four wait, so that they look for the products at the same moment.
    const locker = await db.reserve()
    let runs: Awaited<ReturnType<typeof run>>[]
    try {
      await locker`BEGIN`
      await locker`LOCK TABLE products IN ACCESS EXCLUSIVE MODE`
      const seeding = Promise.all(Array.from({ length: 4 }, () => run(['db:seed'])))
      for (let i = 0; i < 400; i++) {
        if ((await locker`SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted`)[0]!.n >= 4) break
        await Bun.sleep(50)
      }
      await locker`COMMIT`
      runs = await seeding
    } finally {
      await locker`ROLLBACK`.catch(() => {})
      locker.release()
    }
    expect(runs.map((result) => result.code)).toEqual([0, 0, 0, 0])
    const twice = await db`SELECT name FROM products GROUP BY name HAVING count(*) > 1`
    expect([...twice]).toEqual([])
    expect((await db`SELECT count(*)::int AS n FROM products`)[0]!.n).toBeGreaterThanOrEqual(12)
  }, 30_000)

  test('db:seed updates the admin password from ADMIN_PASSWORD', async () => {
    expect((await run(['db:seed'], { ADMIN_PASSWORD: 'second-password' })).code).toBe(0)
    const [row] = await db`SELECT password_hash FROM users WHERE email = 'boss@example.com'`
    expect(await Bun.password.verify('second-password', row!.password_hash)).toBe(true)
    expect(await Bun.password.verify('first-password', row!.password_hash)).toBe(false)
  })

  test('user:role switches a role both ways and fails clearly on unknown users or roles', async () => {
    await db`INSERT INTO users (email, password_hash) VALUES ('promote@example.com', 'x')`
    const promoted = await run(['user:role', 'Promote@Example.com', 'admin'])
    expect(promoted.code).toBe(0)
    expect((await db`SELECT role FROM users WHERE email = 'promote@example.com'`)[0]!.role).toBe('admin')
    expect((await run(['user:role', 'promote@example.com', 'customer'])).code).toBe(0)
    expect((await db`SELECT role FROM users WHERE email = 'promote@example.com'`)[0]!.role).toBe('customer')
    const unknown = await run(['user:role', 'ghost@example.com', 'admin'])
    expect(unknown.code).not.toBe(0)
    expect(unknown.stderr).toContain('No user')
    const badRole = await run(['user:role', 'promote@example.com', 'root'])
    expect(badRole.code).not.toBe(0)
    expect(badRole.stderr).toContain('Usage')
  })
})
