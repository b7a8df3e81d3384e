import { afterAll, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import { runMigrations } from '../src/db/migrate'
import { pgBin, sql, waitFor } from './helpers'
import { startApi, startWorker, stopServices } from './processes'

// The restore drill, on a database of its own: orders arrive while `make backup` runs, the
// database is dropped, `make restore` brings it back, and a worker started afterwards finishes
// what the backup caught half done.

afterAll(stopServices)

const root = new URL('..', import.meta.url).pathname
const name = `order_api_drill_${process.pid}`
const url = Object.assign(new URL(process.env.DATABASE_URL!), { pathname: `/${name}` }).toString()
const STOCK = 1_000_000

async function script(path: string, env: Record<string, string>) {
  const child = Bun.spawn(['bash', path], {
    cwd: root,
    env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', DATABASE_URL: url, ...env },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ])
  return { code, stdout, stderr }
}

test('make backup while orders arrive, drop the database, make restore: every acknowledged order is back and gets confirmed', async () => {
  const backups = mkdtempSync(join(tmpdir(), 'order-api-backups-'))
  const prefix = `drill-${process.pid}-${Date.now()}`
  const services = { QUEUE_PREFIX: prefix, DATABASE_URL: url }
  const reconcileQuickly = { RECONCILE_AFTER_SECONDS: '2', RECONCILE_INTERVAL_SECONDS: '1' }
  let drill: postgres.Sql | undefined
  try {
    await runMigrations(url)
    drill = postgres(url, { max: 2, onnotice: () => {} })
    const [product] = await drill<{ id: number }[]>`
      INSERT INTO products (name, price_cents, inventory) VALUES ('Drill product', 500, ${STOCK}) RETURNING id`
    let api = await startApi(services)
    let worker = startWorker({ ...services, ...reconcileQuickly })
    const tokens: string[] = []
    for (let i = 0; i < 4; i++) {
      const reply = await fetch(`${api.base}/api/auth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: `drill-${i}-${prefix}@example.com`, password: 'password123' }),
      })
      expect(reply.status).toBe(201)
      tokens.push(((await reply.json()) as { token: string }).token)
    }

    // Four customers order, one unit each, until told to stop; each acknowledgement is noted.
    const acknowledged: { id: number; at: number }[] = []
    const failures: number[] = []
    let ordering = true
    const customers = tokens.map(async (token) => {
      while (ordering) {
        const reply = await fetch(`${api.base}/api/orders`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({ items: [{ product_id: product!.id, quantity: 1 }] }),
        })
        if (reply.status === 201) acknowledged.push({ id: ((await reply.json()) as { id: number }).id, at: Date.now() })
        else failures.push(reply.status)
      }
    })
    let backup: Awaited<ReturnType<typeof script>>
    let backupBegan: number
    try {
      await Bun.sleep(1_000)
      backupBegan = Date.now()
      backup = await script('scripts/backup.sh', { BACKUP_DIR: backups })
      await Bun.sleep(500)
    } finally {
      ordering = false
      await Promise.all(customers)
    }
    expect(backup.code).toBe(0)
    expect(failures).toEqual([])
    const file = backup.stdout.trim().split('\n').pop()!
    expect(file.startsWith(backups)).toBe(true)
    const beforeBackup = acknowledged.filter((order) => order.at < backupBegan).map((order) => order.id)
    expect(beforeBackup.length).toBeGreaterThan(10)
    // Some orders came after the dump's snapshot: the disk "lost" them with the database.
    expect(acknowledged.length).toBeGreaterThan(beforeBackup.length)

    api.child.kill()
    worker.child.kill()
    await Promise.all([api.child.exited, worker.child.exited])
    await drill.end()
    drill = undefined
    await sql.unsafe(`DROP DATABASE ${name} WITH (FORCE)`)

    const restored = await script('scripts/restore.sh', { FILE: file })
    expect({ code: restored.code, stderr: restored.stderr }).toMatchObject({ code: 0 })
    // A second restore over the restored tables is refused and changes nothing.
    const again = await script('scripts/restore.sh', { FILE: file })
    expect(again.code).not.toBe(0)
    expect(again.stderr).toMatch(/already holds \d+ tables.*FORCE=1/)

    drill = postgres(url, { max: 2, onnotice: () => {} })
    const lines = await drill<{ order_id: number; product_id: number; quantity: number }[]>`
      SELECT order_id, product_id, quantity FROM order_items WHERE order_id IN ${drill(beforeBackup)}`
    expect(lines.map((line) => line.order_id).sort((a, b) => a - b)).toEqual([...beforeBackup].sort((a, b) => a - b))
    expect(lines.every((line) => line.product_id === product!.id && line.quantity === 1)).toBe(true)

    // The services again: whatever the backup caught pending is confirmed and notified.
    api = await startApi(services)
    worker = startWorker({ ...services, ...reconcileQuickly })
    const settled = await waitFor(async () => {
      const [row] = await drill!<{ pending: number; unnotified: number }[]>`
        SELECT count(*) FILTER (WHERE status = 'pending')::int AS pending,
          count(*) FILTER (WHERE status = 'confirmed' AND NOT EXISTS (
            SELECT 1 FROM notifications n WHERE n.order_id = orders.id AND n.sent_at IS NOT NULL))::int AS unnotified
        FROM orders`
      return row!.pending === 0 && row!.unnotified === 0 ? row : undefined
    }, 60_000)
    expect(settled).toEqual({ pending: 0, unnotified: 0 })
    const [units] = await drill<{ left: number; sold: number }[]>`
      SELECT (SELECT inventory::int FROM products WHERE id = ${product!.id}) AS left,
        (SELECT coalesce(sum(quantity), 0)::int FROM order_items) AS sold`
    expect(units!.left + units!.sold).toBe(STOCK)
  } finally {
    await stopServices()
    await drill?.end()
    await sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    rmSync(backups, { recursive: true, force: true })
  }
}, 180_000)

test('make backup reads BACKUP_DATABASE_URL (a streaming replica, say) instead of DATABASE_URL when it is set', async () => {
  const backups = mkdtempSync(join(tmpdir(), 'order-api-backups-'))
  const replica = new URL(process.env.DATABASE_URL!)
  try {
    // DATABASE_URL names a server that is not there: the dump can only come from the other URL.
    const backup = await script('scripts/backup.sh', {
      DATABASE_URL: 'postgres://postgres@127.0.0.1:1/order_api',
      BACKUP_DATABASE_URL: replica.href,
      BACKUP_DIR: backups,
    })
    expect(backup.code).toBe(0)
    const file = backup.stdout.trim().split('\n').pop()!
    expect(file.startsWith(join(backups, `${replica.pathname.slice(1)}-`))).toBe(true)
    const listing = Bun.spawnSync([`${pgBin()}/pg_restore`, '--list', file])
    expect(listing.exitCode).toBe(0)
    expect(listing.stdout.toString()).toContain('TABLE public orders')
  } finally {
    rmSync(backups, { recursive: true, force: true })
  }
})
