import { expect } from 'bun:test'
import { readdirSync } from 'node:fs'
import { app, startApp } from '../src/app'
import { sql } from '../src/db/client'
import type { Mailer, Message } from '../src/modules/notifications/service'
import { upsertUser } from '../src/modules/auth/service'
import type { Product } from '../src/modules/products/model'

export { sql }

// As server.ts does: the in-process app's gauges and the changes its caches follow.
startApp()

export type Reply<T = any> = { status: number; body: T; headers: Headers }

type CallOptions = { token?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> }

/** One request through the whole Elysia app, as a client would send it. */
export async function call<T = any>(method: string, path: string, options: CallOptions = {}): Promise<Reply<T>> {
  const headers: Record<string, string> = { ...options.headers }
  if (options.token) headers.authorization = `Bearer ${options.token}`
  let body: string | undefined = options.rawBody
  if (options.body !== undefined) {
    body = JSON.stringify(options.body)
    headers['content-type'] ??= 'application/json'
  }
  const response = await app.handle(new Request(`http://localhost${path}`, { method, headers, body }))
  const text = await response.text()
  let parsed: unknown = text
  try {
    parsed = text ? JSON.parse(text) : undefined
  } catch {}
  return { status: response.status, body: parsed as T, headers: response.headers }
}

/** Asserts a contract error: the status and a JSON `{error}` with a message, no stack or SQL. */
export function expectError(reply: Reply, status: number, message?: string | RegExp) {
  // The body travels with the status so that a failure shows what the server said.
  if (reply.status !== status)
    expect({ status: reply.status, body: reply.body }).toEqual({ status, body: '(any error)' })
  expect(reply.status).toBe(status)
  expect(typeof reply.body?.error).toBe('string')
  expect(reply.body.error.length).toBeGreaterThan(0)
  expect(reply.headers.get('content-type') ?? '').toContain('application/json')
  const text = JSON.stringify(reply.body)
  expect(text).not.toMatch(/\bat .+\.(ts|js):\d+|SELECT |INSERT |UPDATE .+ SET|postgres/i)
  if (message) expect(reply.body.error).toMatch(message)
}

let counter = 0
export const uniqueEmail = (prefix = 'user') => `${prefix}-${process.pid}-${Date.now()}-${++counter}@example.com`

export async function registerCustomer(prefix = 'customer') {
  const email = uniqueEmail(prefix)
  const reply = await call('POST', '/api/auth/register', { body: { email, password: 'password123' } })
  expect(reply.status).toBe(201)
  return { token: reply.body.token as string, user: reply.body.user as { id: number; email: string; role: string } }
}

export async function createAdmin() {
  const email = uniqueEmail('admin')
  await upsertUser(email, 'admin-password', 'admin')
  const reply = await call('POST', '/api/auth/login', { body: { email, password: 'admin-password' } })
  expect(reply.status).toBe(200)
  return { token: reply.body.token as string, user: reply.body.user }
}

/** A signed-in account as the tests hold it. */
export type Account = { token: string; user: { id: number; email: string; role: string } }

/**
 * The cast most test files start with: an admin and the named customers (each registered under
 * a unique address made from its name), created at once.
 */
export async function shopWith<const Names extends readonly string[]>(
  ...customers: Names
): Promise<{ admin: Account } & Record<Names[number], Account>> {
  const [admin, ...registered] = await Promise.all([createAdmin(), ...customers.map((name) => registerCustomer(name))])
  return Object.fromEntries([
    ['admin', admin],
    ...customers.map((name, i) => [name, registered[i]!]),
  ]) as { admin: Account } & Record<Names[number], Account>
}

export async function createProduct(adminToken: string, fields: Record<string, unknown> = {}) {
  const reply = await call('POST', '/api/products', {
    token: adminToken,
    body: { name: `Product ${++counter}`, price_cents: 1000, inventory: 10, ...fields },
  })
  expect(reply.status).toBe(201)
  return reply.body as Product
}

export async function inventoryOf(productId: number): Promise<number> {
  const [row] = await sql<
    { inventory: number }[]
  >`SELECT inventory::float8 AS inventory FROM products WHERE id = ${productId}`
  return row!.inventory
}

export async function countRows(table: 'orders' | 'order_items' | 'products' | 'users'): Promise<number> {
  const [row] = await sql<{ count: string }[]>`SELECT count(*) FROM ${sql(table)}`
  return Number(row!.count)
}

/** Polls until `check` returns a truthy value or the time runs out (then the last value is returned). */
export async function waitFor<T>(check: () => Promise<T> | T, timeoutMs = 20_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value || Date.now() > deadline) return value
    await Bun.sleep(intervalMs)
  }
}

export async function countWhere(query: Promise<{ count: number }[]>): Promise<number> {
  const [row] = await query
  return Number(row?.count ?? 0)
}

/** A free TCP port on 127.0.0.1, for servers a test starts itself. */
export function freePort(): number {
  const server = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const port = server.port
  server.stop(true)
  return port
}

/**
 * The outbox as items, for queries that look for one order's or one change's job: a row that
 * carries many (a confirmation's `orderIds`, an audit job's `entries`) gives one row per item,
 * `{orderId}` or the entry; any other row is its own item. Use as `FROM ${outboxItems}`.
 */
export const outboxItems = sql`(
  SELECT o.id, o.queue, o.name, o.sent_at, item AS payload
  FROM outbox o CROSS JOIN LATERAL jsonb_array_elements(CASE
    WHEN jsonb_typeof(o.payload->'orderIds') = 'array'
      THEN (SELECT jsonb_agg(jsonb_build_object('orderId', x)) FROM jsonb_array_elements(o.payload->'orderIds') x)
    WHEN jsonb_typeof(o.payload->'entries') = 'array' THEN o.payload->'entries'
    ELSE jsonb_build_array(o.payload) END) AS item
) AS outbox`

/**
 * How many of these orders have a confirmation and an `order.placed` audit in the outbox (a row
 * holds one order, or a whole batch of them); `unsentOnly` counts the rows not relayed yet.
 */
export async function outboxCoverage(orderIds: number[], unsentOnly = false) {
  const [row] = await sql<{ confirmations: number; audits: number }[]>`
    SELECT
      (SELECT count(*)::int FROM outbox o,
         jsonb_array_elements_text(coalesce(o.payload->'orderIds', jsonb_build_array(o.payload->'orderId'))) AS c(id)
       WHERE o.queue = 'order-confirmation' AND c.id::int = ANY(${orderIds}) AND (NOT ${unsentOnly} OR o.sent_at IS NULL)) AS confirmations,
      (SELECT count(*)::int FROM outbox o,
         jsonb_array_elements(coalesce(o.payload->'entries', jsonb_build_array(o.payload))) AS a(entry)
       WHERE o.queue = 'audit' AND a.entry->>'action' = 'order.placed' AND (a.entry->>'entityId')::int = ANY(${orderIds})
         AND (NOT ${unsentOnly} OR o.sent_at IS NULL)) AS audits`
  return row!
}

/** The default transport's behaviour, counting deliveries so a test can see a second send. */
export class CountingMailer implements Mailer {
  readonly transport = 'log' as const
  readonly sent: Message[] = []
  async deliver(message: Message) {
    this.sent.push(message)
  }
}

/** The newest installed Postgres's binaries (pg_dump, pg_restore), as the scripts and images use them. */
export function pgBin() {
  const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(a) - Number(b))
  return `/usr/lib/postgresql/${versions.pop()}/bin`
}
