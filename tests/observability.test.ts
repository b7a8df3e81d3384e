import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import {
  call,
  countWhere,
  createAdmin,
  createProduct,
  freePort,
  inventoryOf,
  outboxCoverage,
  registerCustomer,
  sql,
  waitFor,
} from './helpers'
import { startApi, startWorker, stopServices, untilAnswering } from './processes'

afterAll(stopServices)

let admin: { token: string }
let customer: { token: string; user: { id: number } }

beforeAll(async () => {
  admin = await createAdmin()
  customer = await registerCustomer('observed')
})

const metricValue = (text: string, series: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line ? Number(line.slice(series.length + 1)) : undefined
}

describe('/metrics', () => {
  test('request counts and latency by route template and status, order counters, outbox and queue gauges, process metrics', async () => {
    const product = await createProduct(admin.token, { inventory: 1 })
    await call('GET', `/api/products/${product.id}`)
    await call('GET', '/api/products/abc')
    const before = await (await call('GET', '/metrics')).body
    const placedBefore = metricValue(before, 'orders_placed_total') ?? 0
    const rejectedBefore = metricValue(before, 'orders_rejected_total{reason="insufficient_inventory"}') ?? 0
    const orderOne = () =>
      call('POST', '/api/orders', { token: customer.token, body: { items: [{ product_id: product.id, quantity: 1 }] } })
    expect((await orderOne()).status).toBe(201) // the only unit
    expect((await orderOne()).status).toBe(409)

    const reply = await call('GET', '/metrics')
    expect(reply.status).toBe(200)
    expect(reply.headers.get('content-type')).toContain('text/plain')
    const text: string = reply.body
    expect(
      metricValue(text, 'http_requests_total{method="GET",route="/api/products/:id",status="200"}'),
    ).toBeGreaterThanOrEqual(1)
    expect(
      metricValue(text, 'http_requests_total{method="GET",route="/api/products/:id",status="400"}'),
    ).toBeGreaterThanOrEqual(1)
    expect(text).not.toContain(`route="/api/products/${product.id}"`)
    expect(text).toContain(
      'http_request_duration_seconds_bucket{le="0.005",method="GET",route="/api/products/:id",status="200"}',
    )
    expect(metricValue(text, 'orders_placed_total')).toBe(placedBefore + 1)
    expect(metricValue(text, 'orders_rejected_total{reason="insufficient_inventory"}')).toBe(rejectedBefore + 1)
    expect(metricValue(text, 'outbox_backlog')).toBeGreaterThanOrEqual(0)
    expect(metricValue(text, 'queue_jobs{queue="order-confirmation",state="waiting"}')).toBeGreaterThanOrEqual(0)
    expect(metricValue(text, 'queue_jobs{queue="audit",state="failed"}')).toBeGreaterThanOrEqual(0)
    expect(metricValue(text, 'process_cpu_seconds_total')).toBeGreaterThan(0)
    expect(metricValue(text, 'process_resident_memory_bytes')).toBeGreaterThan(0)
  })
})

describe('the gauges the alert rules read', () => {
  test("readiness per check, the oldest unsent outbox row's age, webhook endpoints disabled automatically", async () => {
    const gauges = async () => (await call('GET', '/metrics')).body as string
    const endpoint = await call('POST', '/api/admin/webhooks', {
      token: admin.token,
      body: { url: 'https://hooks.example.com/alerts', events: ['order.placed'] },
    })
    expect(endpoint.status).toBe(201)
    let waiting: { id: number } | undefined
    try {
      const before = await gauges()
      expect(metricValue(before, 'readiness_check_up{check="postgres"}')).toBe(1)
      expect(metricValue(before, 'readiness_check_up{check="redis"}')).toBe(1)
      const disabledBefore = metricValue(before, 'webhook_endpoints_auto_disabled')!
      expect(disabledBefore).toBeGreaterThanOrEqual(0)

      // No relay runs in this process: a row written two minutes ago waits that long.
      ;[waiting] = await sql<{ id: number }[]>`
        INSERT INTO outbox (queue, name, payload, created_at)
        VALUES ('audit', 'metrics-probe', '{}'::jsonb, now() - interval '120 seconds') RETURNING id`
      await sql`UPDATE webhook_endpoints SET enabled = false, disabled_reason = 'The endpoint answered 410 Gone'
        WHERE id = ${endpoint.body.id}`
      const after = await gauges()
      expect(metricValue(after, 'outbox_oldest_age_seconds')).toBeGreaterThanOrEqual(120)
      expect(metricValue(after, 'webhook_endpoints_auto_disabled')).toBe(disabledBefore + 1)
      // Disabled by an admin (no reason) is not an alert.
      await sql`UPDATE webhook_endpoints SET disabled_reason = NULL WHERE id = ${endpoint.body.id}`
      expect(metricValue(await gauges(), 'webhook_endpoints_auto_disabled')).toBe(disabledBefore)
    } finally {
      if (waiting) await sql`DELETE FROM outbox WHERE id = ${waiting.id}`
      await call('DELETE', `/api/admin/webhooks/${endpoint.body.id}`, { token: admin.token })
    }
  })
})

describe('request ids', () => {
  test('a sane X-Request-Id is echoed; otherwise one is generated', async () => {
    expect((await call('GET', '/health', { headers: { 'x-request-id': 'abc-123' } })).headers.get('x-request-id')).toBe(
      'abc-123',
    )
    expect((await call('GET', '/health')).headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
    const hostile = await call('GET', '/health', { headers: { 'x-request-id': 'x'.repeat(500) } })
    expect(hostile.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
  })
})

describe('logs, worker metrics and job lines', () => {
  test('one JSON line per request with id, route, status and duration; no passwords or tokens anywhere', async () => {
    const workerPort = freePort()
    const prefix = `logs-${process.pid}-${Date.now()}`
    const api = await startApi({ QUEUE_PREFIX: prefix, LOG_LEVEL: 'info' }, { log: true })
    const worker = startWorker(
      { QUEUE_PREFIX: prefix, WORKER_METRICS_PORT: String(workerPort), LOG_LEVEL: 'info' },
      { log: true },
    )
    const base = api.base
    await untilAnswering(`http://127.0.0.1:${workerPort}/health`)

    const email = `logged-${Date.now()}@example.com`
    const password = 'secret-password-123'
    const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      })
    const { token } = (await (await post('/api/auth/register', { email, password })).json()) as { token: string }
    await post('/api/auth/login', { email, password: 'wrong-password-456' })
    const product = await createProduct(admin.token, { inventory: 5 })
    const ordered = await post(
      '/api/orders',
      { items: [{ product_id: product.id, quantity: 1 }] },
      { authorization: `Bearer ${token}`, 'x-request-id': 'order-req-1' },
    )
    const order = (await ordered.json()) as { id: number }
    expect(
      await waitFor(
        async () =>
          (await countWhere(
            sql`SELECT count(*)::int AS count FROM orders WHERE id = ${order.id} AND status = 'confirmed'`,
          )) === 1,
      ),
    ).toBe(true)

    const requestLine = await waitFor(() =>
      api.logs().find((line) => line.msg === 'request' && line.requestId === 'order-req-1'),
    )
    expect(requestLine).toMatchObject({ method: 'POST', route: '/api/orders', status: 201, requestId: 'order-req-1' })
    expect(requestLine?.ms).toBeNumber()
    expect(
      api.logs().some((line) => line.msg === 'request' && line.route === '/api/auth/login' && line.status === 401),
    ).toBe(true)

    const jobLines = await waitFor(() => {
      const lines = worker.logs().filter((line) => line.msg === 'job finished' && line.orderIds?.includes(order.id))
      return lines.length ? lines : undefined
    })
    expect(jobLines![0]).toMatchObject({
      queue: 'order-confirmation',
      jobId: expect.stringMatching(/^outbox-\d+(-\d+)?$/),
    })
    expect(worker.logs().some((line) => line.msg === 'job started' && line.orderIds?.includes(order.id))).toBe(true)

    const workerMetrics = await (await fetch(`http://127.0.0.1:${workerPort}/metrics`)).text()
    expect(
      metricValue(workerMetrics, 'jobs_processed_total{queue="order-confirmation",outcome="completed"}'),
    ).toBeGreaterThanOrEqual(1)
    expect(
      metricValue(workerMetrics, 'jobs_processed_total{queue="audit",outcome="completed"}'),
    ).toBeGreaterThanOrEqual(1)
    expect(workerMetrics).toContain('job_duration_seconds_bucket')
    expect(metricValue(workerMetrics, 'orders_confirmed_total')).toBeGreaterThanOrEqual(1)

    const everything = [...api.lines, ...worker.lines].join('\n')
    for (const secret of [password, 'wrong-password-456', token, token.split('.')[2]!])
      expect(everything).not.toContain(secret)
    expect(everything.toLowerCase()).not.toContain('bearer ')
  })
})

describe('graceful shutdown of the API', () => {
  test('SIGTERM in the middle of a burst of orders: every accepted order is whole, exit code 0', async () => {
    const prefix = `shutdown-${process.pid}-${Date.now()}`
    const api = await startApi({ QUEUE_PREFIX: prefix, LOG_LEVEL: 'info' }, { log: true })
    const base = api.base
    const shopper = await registerCustomer('shutdown')
    const product = await createProduct(admin.token, { inventory: 1000 })

    const burst = Array.from({ length: 150 }, async (_, i) => {
      await Bun.sleep(i % 50) // spread over ~50 ms so SIGTERM lands mid-burst
      try {
        const response = await fetch(`${base}/api/orders`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${shopper.token}` },
          body: JSON.stringify({ items: [{ product_id: product.id, quantity: 1 }] }),
        })
        return { status: response.status, body: (await response.json()) as { id: number } }
      } catch {
        return { status: 0, body: undefined }
      }
    })
    await Bun.sleep(20)
    api.child.kill('SIGTERM')
    const replies = await Promise.all(burst)
    expect(await api.child.exited).toBe(0)

    const accepted = replies.filter((reply) => reply.status === 201).map((reply) => reply.body!.id)
    expect(accepted.length).toBeGreaterThan(0)
    expect(replies.every((reply) => reply.status === 201 || reply.status === 0 || reply.status === 503)).toBe(true)
    // Nothing lost, nothing half-done: the orders in the database are exactly the accepted ones,
    // each with its line and both outbox rows, all relayed before the process exited.
    const stored = await sql<{ id: number; lines: number }[]>`
      SELECT o.id, (SELECT count(*)::int FROM order_items i WHERE i.order_id = o.id) AS lines
      FROM orders o WHERE o.user_id = ${shopper.user.id} ORDER BY o.id`
    expect(stored.map((row) => row.id).sort()).toEqual([...accepted].sort())
    expect(stored.every((row) => row.lines === 1)).toBe(true)
    expect(await outboxCoverage(accepted)).toEqual({ confirmations: accepted.length, audits: accepted.length })
    expect(await outboxCoverage(accepted, true)).toEqual({ confirmations: 0, audits: 0 })
    expect(await inventoryOf(product.id)).toBe(1000 - accepted.length)
    expect(api.logs().some((line) => line.msg === 'stopped')).toBe(true)
  })
})

describe('METRICS_TOKEN', () => {
  test("the API's and the worker's /metrics answer only the bearer token when it is set", async () => {
    const token = `metrics-token-${process.pid}-${Date.now()}`
    const workerPort = freePort()
    const env = { METRICS_TOKEN: token, QUEUE_PREFIX: `metrics-token-${process.pid}`, LOG_LEVEL: 'info' }
    const api = await startApi(env, { log: true })
    const worker = startWorker({ ...env, WORKER_METRICS_PORT: String(workerPort) }, { log: true })
    await untilAnswering(`http://127.0.0.1:${workerPort}/health`)
    for (const url of [`${api.base}/metrics`, `http://127.0.0.1:${workerPort}/metrics`]) {
      for (const authorization of [undefined, 'Bearer wrong-token-of-some-length', token, `Bearer ${token}x`]) {
        const refused = await fetch(url, { headers: authorization ? { authorization } : {} })
        expect(refused.status).toBe(401)
        expect(refused.headers.get('www-authenticate')).toStartWith('Bearer')
        expect(((await refused.json()) as { error: string }).error).toContain('METRICS_TOKEN')
      }
      const served = await fetch(url, { headers: { authorization: `Bearer ${token}` } })
      expect(served.status).toBe(200)
      expect(await served.text()).toContain('process_cpu_seconds_total')
    }
    // Health stays open for the orchestrator; the token is never logged.
    expect((await fetch(`http://127.0.0.1:${workerPort}/health`)).status).toBe(200)
    expect([...api.lines, ...worker.lines].join('\n')).not.toContain(token)
  })

  test('in production without it, the API and the worker warn at start that /metrics is public', async () => {
    const production = {
      NODE_ENV: 'production',
      JWT_SECRET: 'a-production-secret-of-forty-characters!!',
      LOG_LEVEL: 'info',
    }
    const workerPort = freePort()
    const api = await startApi(production, { log: true })
    const worker = startWorker({ ...production, WORKER_METRICS_PORT: String(workerPort) }, { log: true })
    await untilAnswering(`http://127.0.0.1:${workerPort}/health`)
    for (const service of [api, worker])
      await waitFor(() => service.logs().find((line) => line.level === 40 && /METRICS_TOKEN/.test(line.msg)))
    expect((await fetch(`${api.base}/metrics`)).status).toBe(200)
  })
})
