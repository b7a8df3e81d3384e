// make bench's export phase (BENCH_ONLY=export runs it alone): an order export of a million lines
// (250 000 orders of 4 lines, written straight into the bench database), built by the worker
// through the queue as an admin's POST /api/admin/exports asks, then downloaded from the API.
// Reports the build's time and the worker's peak RSS during it (target ≤ 128 MB), and the
// download's time and the API's peak RSS.

import { SignJWT } from 'jose'
import type { Sql } from 'postgres'
import { peakRssMb, resetPeakRss, rssMb } from './memory'

export type ExportCostRow = {
  lines: number
  buildSeconds: number
  workerRssBeforeMb: number
  workerPeakRssMb: number
  downloadSeconds: number
  bytes: number
  downloadedLines: number
  apiRssBeforeMb: number
  apiPeakRssMb: number
}

type Options = { monitor: Sql; apiUrl: string; jwtSecret: string; workerPid: number; apiPids: number[] }

const ORDERS = 250_000
const LINES_PER_ORDER = 4
// Every order of the export is created at this instant, which nothing else in the bench uses.
const MARKER = '2001-01-01T00:00:00.000Z'

async function adminToken(monitor: Sql, jwtSecret: string) {
  const [user] = await monitor<{ id: number }[]>`
    INSERT INTO users (email, password_hash, role) VALUES ('bench-exports@example.com', 'x', 'admin')
    ON CONFLICT ((lower(email))) DO UPDATE SET role = 'admin' RETURNING id`
  const [session] = await monitor<{ id: number }[]>`
    INSERT INTO sessions (user_id, expires_at) VALUES (${user!.id}, now() + interval '1 day') RETURNING id`
  return new SignJWT({ role: 'admin', sid: session!.id, jti: crypto.randomUUID() })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(String(user!.id))
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(new TextEncoder().encode(jwtSecret))
}

export async function measureExport({
  monitor,
  apiUrl,
  jwtSecret,
  workerPid,
  apiPids,
}: Options): Promise<ExportCostRow> {
  const headers = {
    authorization: `Bearer ${await adminToken(monitor, jwtSecret)}`,
    'content-type': 'application/json',
  }
  await monitor`
    WITH customers AS (SELECT array_agg(id ORDER BY id) AS ids FROM users WHERE role = 'customer'),
    placed AS (
      INSERT INTO orders (user_id, status, total_cents, created_at, shipping_address)
      SELECT c.ids[1 + g % array_length(c.ids, 1)], 'delivered', 4000, ${MARKER}::timestamptz,
        '{"name": "Bench, \\"Customer\\"", "line1": "1 Road", "city": "London", "postal_code": "N1", "country": "GB"}'
      FROM customers c, generate_series(1, ${ORDERS}) AS g
      RETURNING id
    )
    INSERT INTO order_items (order_id, product_id, name, unit_price_cents, quantity, line_total_cents)
    SELECT o.id, p.id, p.name, p.price_cents, 1, p.price_cents
    FROM placed o CROSS JOIN generate_series(0, ${LINES_PER_ORDER - 1}) AS k
      JOIN products p ON p.id = (o.id * ${LINES_PER_ORDER} + k) % 90000 + 1`
  await monitor`VACUUM ANALYZE orders, order_items`
  try {
    const workerRssBeforeMb = rssMb(workerPid, 'VmRSS')
    resetPeakRss(workerPid)
    const started = performance.now()
    const asked = await fetch(`${apiUrl}/api/admin/exports`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ type: 'orders', from: MARKER, to: MARKER }),
    })
    if (asked.status !== 202) throw new Error(`export refused: ${asked.status} ${await asked.text()}`)
    const { id } = (await asked.json()) as { id: number }
    let status: { status: string; row_count: number; error: string | null }
    do {
      await Bun.sleep(200)
      status = (await (await fetch(`${apiUrl}/api/admin/exports/${id}`, { headers })).json()) as typeof status
    } while (status.status === 'queued' || status.status === 'running')
    if (status.status !== 'done') throw new Error(`export ${status.status}: ${status.error}`)
    const buildSeconds = (performance.now() - started) / 1000
    const workerPeakRssMb = peakRssMb(workerPid)

    const apiRssBeforeMb = Math.max(...apiPids.map((pid) => rssMb(pid, 'VmRSS')))
    for (const pid of apiPids) resetPeakRss(pid)
    const downloadStarted = performance.now()
    const file = await fetch(`${apiUrl}/api/admin/exports/${id}/download`, { headers })
    let bytes = 0
    let lineEnds = 0
    for await (const chunk of file.body!) {
      bytes += chunk.byteLength
      for (let i = 0; i < chunk.byteLength; i++) if (chunk[i] === 10) lineEnds++
    }
    const downloadSeconds = (performance.now() - downloadStarted) / 1000
    await monitor`DELETE FROM exports WHERE id = ${id}`
    return {
      lines: status.row_count,
      buildSeconds,
      workerRssBeforeMb,
      workerPeakRssMb,
      downloadSeconds,
      bytes,
      // The header and each order line end in CRLF; no name in the bench holds a line break.
      downloadedLines: lineEnds - 1,
      apiRssBeforeMb,
      apiPeakRssMb: Math.max(...apiPids.map(peakRssMb)),
    }
  } finally {
    await monitor`DELETE FROM orders WHERE created_at = ${MARKER}::timestamptz`
  }
}
