import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { Webhook as Verifier } from 'standardwebhooks'
import { workerRegistry } from '../src/lib/worker-metrics'
import { QUEUES } from '../src/outbox/definitions'
import { queues } from '../src/outbox/queues'
import { OutboxRelay } from '../src/outbox/relay'
import { housekeeping, startWorkers } from '../src/worker'
import { config } from '../src/config'
import { type Resolver, useResolver } from '../src/modules/webhooks/public-address'
import { createWebhook } from '../src/modules/webhooks/service'
import {
  call,
  CountingMailer,
  createAdmin,
  createProduct,
  expectError,
  freePort,
  registerCustomer,
  sql,
  waitFor,
} from './helpers'
import { startApi, startRedis, startWorker, stopServices } from './processes'
import { type Arrival, webhookReceiver } from './webhook-receiver'

// Deliveries go to a real HTTP server on loopback; the preload allows private targets and makes
// retries quick (WEBHOOK_BACKOFF_MS 20, WEBHOOK_TIMEOUT_MS 500, 3 attempts, disabled after 3).

const receiver = webhookReceiver().start()
let admin: { token: string }
let relay: OutboxRelay | undefined
let workers: ReturnType<typeof startWorkers> | undefined

beforeAll(async () => {
  admin = await createAdmin()
  relay = new OutboxRelay(queues(), { pollIntervalMs: 100 }).start()
  workers = startWorkers({ mailer: new CountingMailer(), concurrency: 4 })
})

async function stopInProcessPipeline() {
  await relay?.stop()
  await workers?.close()
  relay = undefined
  workers = undefined
}

afterAll(async () => {
  await stopInProcessPipeline()
  await stopServices()
  receiver.stop()
  // Later test files must not deliver to this file's endpoints.
  await sql`DELETE FROM webhook_endpoints`
})

type Endpoint = { id: number; secret: string; url: string }

let paths = 0
async function subscribe(events: string[] = ['*'], answer?: (nth: number) => Response | Promise<Response>) {
  const path = `/hook-${++paths}`
  if (answer) receiver.answer(path, answer)
  const reply = await call('POST', '/api/admin/webhooks', {
    token: admin.token,
    body: { url: receiver.url(path), events, description: `test ${path}` },
  })
  expect(reply.status).toBe(201)
  return { ...(reply.body as Endpoint), path }
}

const bodyOf = (arrival: Arrival) => JSON.parse(arrival.body) as { type: string; timestamp: string; data: any }
const typesAt = (path: string) => receiver.at(path).map((arrival) => bodyOf(arrival).type)

/** Checks the signature with the Standard Webhooks reference library; throws when it does not verify. */
const verify = (secret: string, arrival: Arrival) => new Verifier(secret).verify(arrival.body, arrival.headers)

const arrived = (path: string, count: number, timeoutMs = 15_000) =>
  waitFor(() => receiver.at(path).length >= count || undefined, timeoutMs, 20)

async function deliveries(endpointId: number) {
  const reply = await call('GET', `/api/admin/webhooks/${endpointId}/deliveries?limit=50`, { token: admin.token })
  expect(reply.status).toBe(200)
  return reply.body.data as {
    id: number
    event_type: string
    status: string
    attempts: number
    last_status_code: number | null
    last_error: string | null
  }[]
}

const settled = async (endpointId: number, count: number) =>
  (await waitFor(
    async () => {
      const rows = await deliveries(endpointId)
      return rows.length >= count && rows.every((row) => row.status !== 'pending') ? rows : undefined
    },
    20_000,
    50,
  ))!

const newProduct = (fields: Record<string, unknown> = {}) => createProduct(admin.token, { inventory: 50, ...fields })

describe('managing endpoints', () => {
  test('create shows the secret once; get, list, update and delete never show it', async () => {
    const created = await call('POST', '/api/admin/webhooks', {
      token: admin.token,
      body: { url: receiver.url('/crud'), events: ['order.placed', 'product.created'] },
    })
    expect(created.status).toBe(201)
    expect(created.body).toEqual({
      id: expect.any(Number),
      url: receiver.url('/crud'),
      events: ['order.placed', 'product.created'],
      description: null,
      enabled: true,
      disabled_reason: null,
      secret: expect.stringMatching(/^whsec_[A-Za-z0-9+/]+=*$/),
      created_at: expect.any(String),
      updated_at: expect.any(String),
    })
    const key = Buffer.from(created.body.secret.slice('whsec_'.length), 'base64')
    expect(key.length).toBeGreaterThanOrEqual(24)
    const id = created.body.id
    const { secret: _secret, ...shown } = created.body

    expect((await call('GET', `/api/admin/webhooks/${id}`, { token: admin.token })).body).toEqual(shown)
    const listed = await call('GET', '/api/admin/webhooks', { token: admin.token })
    expect(listed.body.data).toContainEqual(shown)
    expect(JSON.stringify(listed.body)).not.toContain(created.body.secret)

    const patched = await call('PATCH', `/api/admin/webhooks/${id}`, {
      token: admin.token,
      body: { events: ['*'], description: 'ERP', enabled: false },
    })
    expect(patched.status).toBe(200)
    expect(patched.body).toMatchObject({ events: ['*'], description: 'ERP', enabled: false })
    expect(patched.body).not.toHaveProperty('secret')

    expect((await call('DELETE', `/api/admin/webhooks/${id}`, { token: admin.token })).status).toBe(204)
    expectError(await call('GET', `/api/admin/webhooks/${id}`, { token: admin.token }), 404)
    expectError(await call('DELETE', `/api/admin/webhooks/${id}`, { token: admin.token }), 404)
  })

  test('customers get 403, no token 401, unknown ids 404', async () => {
    const customer = await registerCustomer()
    const body = { url: receiver.url('/x'), events: ['*'] }
    expectError(await call('POST', '/api/admin/webhooks', { token: customer.token, body }), 403)
    expectError(await call('GET', '/api/admin/webhooks', { token: customer.token }), 403)
    expectError(await call('POST', '/api/admin/webhooks', { body }), 401)
    // The token is checked before the body: a bad body does not turn a 401/403 into a 400.
    const bad = { url: receiver.url('/x'), events: '*' }
    expectError(await call('POST', '/api/admin/webhooks', { body: bad }), 401)
    expectError(await call('POST', '/api/admin/webhooks', { token: customer.token, body: bad }), 403)
    for (const [method, path] of [
      ['GET', '/api/admin/webhooks/2147483647'],
      ['PATCH', '/api/admin/webhooks/2147483647'],
      ['DELETE', '/api/admin/webhooks/2147483647'],
      ['POST', '/api/admin/webhooks/2147483647/rotate-secret'],
      ['POST', '/api/admin/webhooks/2147483647/test'],
      ['GET', '/api/admin/webhooks/2147483647/deliveries'],
      ['POST', '/api/admin/webhooks/2147483647/deliveries/1/retry'],
    ] as const)
      expectError(
        await call(method, path, { token: admin.token, body: method === 'PATCH' ? { enabled: true } : undefined }),
        404,
      )
  })

  const invalid: [string, unknown][] = [
    ['no events', { url: 'https://example.com/h', events: [] }],
    ['an unknown event', { url: 'https://example.com/h', events: ['order.lost'] }],
    ['events not a list', { url: 'https://example.com/h', events: '*' }],
    ['a relative url', { url: '/hooks', events: ['*'] }],
    ['an ftp url', { url: 'ftp://example.com/h', events: ['*'] }],
    ['a url over 2048 characters', { url: `https://example.com/${'a'.repeat(2048)}`, events: ['*'] }],
    ['a url with credentials', { url: 'https://user:pass@example.com/h', events: ['*'] }],
    ['no url', { events: ['*'] }],
  ]
  test.each(invalid)('%s → 400 and nothing stored', async (_case, body) => {
    const before = await sql`SELECT count(*)::int AS count FROM webhook_endpoints`
    expectError(await call('POST', '/api/admin/webhooks', { token: admin.token, body }), 400)
    const after = await sql`SELECT count(*)::int AS count FROM webhook_endpoints`
    expect(after[0]!.count).toBe(before[0]!.count)
  })

  test('an empty PATCH is a 400', async () => {
    const endpoint = await subscribe(['product.created'])
    expectError(await call('PATCH', `/api/admin/webhooks/${endpoint.id}`, { token: admin.token, body: {} }), 400)
    expectError(
      await call('PATCH', `/api/admin/webhooks/${endpoint.id}`, { token: admin.token, body: { url: 'nope' } }),
      400,
    )
  })
})

describe('deliveries', () => {
  test('every event type arrives, signed per Standard Webhooks, its data the resource right after the change', async () => {
    const endpoint = await subscribe(['*'])
    const product = await newProduct()
    const updated = await call('PUT', `/api/products/${product.id}`, {
      token: admin.token,
      body: { price_cents: 1234 },
    })
    const customer = await registerCustomer()
    const placed = await call('POST', '/api/orders', {
      token: customer.token,
      body: { items: [{ product_id: product.id, quantity: 2 }] },
    })
    expect(placed.status).toBe(201)
    const orderId = placed.body.id
    await waitFor(
      async () => (await sql`SELECT status FROM orders WHERE id = ${orderId}`)[0]!.status === 'confirmed' || undefined,
    )
    const move = (body: Record<string, unknown>) =>
      call('POST', `/api/orders/${orderId}/status`, { token: admin.token, body })
    const processing = await move({ status: 'processing' })
    expect((await move({ status: 'shipped', carrier: 'DHL', tracking_number: 'JD0001' })).status).toBe(200)
    const shippedView = await call('GET', `/api/orders/${orderId}`, { token: customer.token })
    const delivered = await move({ status: 'delivered' })
    const second = await call('POST', '/api/orders', {
      token: customer.token,
      body: { items: [{ product_id: product.id, quantity: 1 }] },
    })
    const cancelled = await call('POST', `/api/orders/${second.body.id}/cancel`, { token: customer.token })
    expect(cancelled.status).toBe(200)
    expect((await call('DELETE', `/api/products/${product.id}`, { token: admin.token })).status).toBe(204)
    const ping = await call('POST', `/api/admin/webhooks/${endpoint.id}/test`, { token: admin.token })
    expect(ping.status).toBe(202)
    expect(ping.body.delivery_id).toBeInteger()

    const everyType = [
      'order.placed',
      'order.confirmed',
      'order.processing',
      'order.shipped',
      'order.delivered',
      'order.cancelled',
      'product.created',
      'product.updated',
      'product.deleted',
      'webhook.test',
    ]
    await waitFor(() => everyType.every((type) => typesAt(endpoint.path).includes(type)) || undefined, 20_000, 20)
    const arrivals = receiver.at(endpoint.path)
    const byType = (type: string) => arrivals.map(bodyOf).filter((body) => body.type === type)
    for (const arrival of arrivals) {
      expect(verify(endpoint.secret, arrival)).toEqual(bodyOf(arrival))
      expect(arrival.headers['content-type']).toBe('application/json')
      expect(arrival.headers['webhook-id']).toMatch(/^msg_\d+$/)
      expect(Math.abs(Number(arrival.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(60)
      expect(new Date(bodyOf(arrival).timestamp).toISOString()).toBe(bodyOf(arrival).timestamp)
    }
    expect(() => verify(`whsec_${Buffer.alloc(32, 1).toString('base64')}`, arrivals[0]!)).toThrow()

    expect(byType('product.created')[0]!.data).toEqual(product)
    expect(byType('product.updated')[0]!.data).toEqual(updated.body)
    expect(byType('product.deleted')[0]!.data.id).toBe(product.id)
    expect(byType('order.placed').find((body) => body.data.id === orderId)!.data).toEqual(placed.body)
    const confirmedData = byType('order.confirmed').find((body) => body.data.id === orderId)!.data
    expect(confirmedData).toMatchObject({ ...placed.body, status: 'confirmed', updated_at: expect.any(String) })
    expect(byType('order.processing')[0]!.data).toEqual(processing.body)
    expect(byType('order.shipped')[0]!.data).toEqual(shippedView.body)
    expect(byType('order.shipped')[0]!.data.shipment).toMatchObject({ carrier: 'DHL', tracking_number: 'JD0001' })
    expect(byType('order.delivered')[0]!.data).toEqual(delivered.body)
    expect(byType('order.cancelled')[0]!.data).toEqual(cancelled.body)
    expect(byType('webhook.test')[0]!.data).toMatchObject({ webhook_id: endpoint.id })

    // The delivery log: one succeeded row per event, its id the webhook-id.
    const log = await settled(endpoint.id, everyType.length + 1)
    expect(log.every((row) => row.status === 'succeeded' && row.attempts === 1 && row.last_status_code === 204)).toBe(
      true,
    )
    // Read again: two events share a type, so the wait above can end before the last one arrives
    // (the receiver records an arrival before it answers, so every succeeded one is there now).
    expect(new Set(receiver.at(endpoint.path).map((arrival) => arrival.headers['webhook-id']))).toEqual(
      new Set(log.map((row) => `msg_${row.id}`)),
    )
  })

  test('filters: named events only, * for all, nothing for a disabled endpoint', async () => {
    const productsOnly = await subscribe(['product.created'])
    const everything = await subscribe(['*'])
    const disabled = await subscribe(['*'])
    await call('PATCH', `/api/admin/webhooks/${disabled.id}`, { token: admin.token, body: { enabled: false } })
    const product = await newProduct()
    const customer = await registerCustomer()
    const order = await call('POST', '/api/orders', {
      token: customer.token,
      body: { items: [{ product_id: product.id, quantity: 1 }] },
    })
    expect(order.status).toBe(201)
    await waitFor(
      () => (typesAt(everything.path).includes('order.placed') && typesAt(productsOnly.path).length > 0) || undefined,
    )
    await Bun.sleep(300)
    expect(typesAt(productsOnly.path)).toEqual(['product.created'])
    expect(typesAt(everything.path)).toContain('product.created')
    expect(typesAt(everything.path)).toContain('order.placed')
    expect(receiver.at(disabled.path)).toEqual([])
    expect(await deliveries(disabled.id)).toEqual([])
  })

  test('a failed attempt is retried with the same webhook-id until it succeeds', async () => {
    const endpoint = await subscribe(['product.created'], (nth) => new Response('no', { status: nth <= 2 ? 500 : 200 }))
    await newProduct()
    await arrived(endpoint.path, 3)
    const arrivals = receiver.at(endpoint.path)
    expect(new Set(arrivals.map((arrival) => arrival.headers['webhook-id'])).size).toBe(1)
    for (const arrival of arrivals) verify(endpoint.secret, arrival)
    const [row] = await settled(endpoint.id, 1)
    expect(row).toMatchObject({ status: 'succeeded', attempts: 3, last_status_code: 200, last_error: null })
  })

  test('Retry-After on a 429 is honoured', async () => {
    const endpoint = await subscribe(['product.created'], (nth) =>
      nth === 1
        ? new Response(null, { status: 429, headers: { 'retry-after': '1' } })
        : new Response(null, { status: 200 }),
    )
    await newProduct()
    await arrived(endpoint.path, 2)
    const [first, second] = receiver.at(endpoint.path)
    // The backoff alone would have retried after ~20 ms.
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(900)
  })

  test('a redirect is not followed: it counts as a failed attempt', async () => {
    const endpoint = await subscribe(['product.created'], () =>
      Response.redirect(receiver.url('/redirected-here'), 307),
    )
    await newProduct()
    const [row] = await settled(endpoint.id, 1)
    expect(row).toMatchObject({ status: 'failed', attempts: 3, last_status_code: 307 })
    expect(receiver.at(endpoint.path)).toHaveLength(3)
    expect(receiver.at('/redirected-here')).toEqual([])
  })

  test('410 disables the endpoint at once: one attempt, and nothing more is sent', async () => {
    const endpoint = await subscribe(['product.created'], () => new Response(null, { status: 410 }))
    await newProduct()
    const [row] = await settled(endpoint.id, 1)
    expect(row).toMatchObject({ status: 'failed', attempts: 1, last_status_code: 410 })
    const shown = await call('GET', `/api/admin/webhooks/${endpoint.id}`, { token: admin.token })
    expect(shown.body).toMatchObject({ enabled: false, disabled_reason: expect.stringContaining('410') })
    await newProduct()
    await Bun.sleep(300)
    expect(receiver.at(endpoint.path)).toHaveLength(1)
    expect(await deliveries(endpoint.id)).toHaveLength(1)
  })

  test('WEBHOOK_DISABLE_AFTER (3) failed deliveries in a row disable the endpoint', async () => {
    const endpoint = await subscribe(['product.created'], () => new Response('down', { status: 503 }))
    for (let i = 0; i < 3; i++) await newProduct()
    const rows = await settled(endpoint.id, 3)
    expect(rows.map((row) => [row.status, row.attempts, row.last_status_code])).toEqual(
      Array(3).fill(['failed', 3, 503]),
    )
    expect(receiver.at(endpoint.path)).toHaveLength(9)
    const shown = await waitFor(async () => {
      const reply = await call('GET', `/api/admin/webhooks/${endpoint.id}`, { token: admin.token })
      return reply.body.enabled === false ? reply.body : undefined
    })
    expect(shown.disabled_reason).toContain('3')
    // Enabled again by an admin, it receives again.
    await call('PATCH', `/api/admin/webhooks/${endpoint.id}`, { token: admin.token, body: { enabled: true } })
    receiver.answer(endpoint.path, () => new Response(null, { status: 200 }))
    await newProduct()
    await arrived(endpoint.path, 10)
  })

  test('a slow endpoint holds at most half the slots: other endpoints and confirmations go on', async () => {
    let inFlight = 0
    let mostInFlight = 0
    const slow = await subscribe(['product.created'], async () => {
      inFlight++
      mostInFlight = Math.max(mostInFlight, inFlight)
      await Bun.sleep(400)
      inFlight--
      return new Response(null, { status: 204 })
    })
    const fast = await subscribe(['product.created'])
    const started = Date.now()
    for (let i = 0; i < 8; i++) await newProduct()
    await arrived(fast.path, 8)
    const fastDone = Date.now() - started
    // Meanwhile an order is confirmed by the worker (its own queue and slots).
    const customer = await registerCustomer()
    const product = await newProduct()
    const order = await call('POST', '/api/orders', {
      token: customer.token,
      body: { items: [{ product_id: product.id, quantity: 1 }] },
    })
    await waitFor(
      async () =>
        (await sql`SELECT status FROM orders WHERE id = ${order.body.id}`)[0]!.status === 'confirmed' || undefined,
    )
    const confirmedAfter = Date.now() - started
    await arrived(slow.path, 8, 30_000)
    const slowDone = Date.now() - started
    // The worker runs 4 at once: the slow endpoint got 2 of them, the others the rest.
    expect(mostInFlight).toBe(2)
    expect(fastDone).toBeLessThan(slowDone)
    expect(confirmedAfter).toBeLessThan(slowDone)
  })

  test('an attempt that gets no answer within WEBHOOK_TIMEOUT_MS fails and is retried', async () => {
    const endpoint = await subscribe(['product.created'], async (nth) => {
      if (nth === 1) await Bun.sleep(1_500)
      return new Response(null, { status: 200 })
    })
    await newProduct()
    const [row] = await settled(endpoint.id, 1)
    expect(row).toMatchObject({ status: 'succeeded', attempts: 2, last_status_code: 200 })
    const [first, second] = receiver.at(endpoint.path)
    expect(second!.at - first!.at).toBeLessThan(1_500)
    const errors = await sql`SELECT last_error FROM webhook_deliveries WHERE id = ${row!.id}`
    expect(errors[0]!.last_error).toBeNull()
  })

  test('a timed-out last attempt records the timeout', async () => {
    const endpoint = await subscribe(['product.created'], async () => {
      await Bun.sleep(1_000)
      return new Response(null, { status: 200 })
    })
    await newProduct()
    const [row] = await settled(endpoint.id, 1)
    expect(row).toMatchObject({ status: 'failed', attempts: 3, last_status_code: null })
    expect(row!.last_error).toMatch(/No answer within 500 ms/)
  })

  test('secret rotation: both signatures for 24 h, then only the new one', async () => {
    const endpoint = await subscribe(['product.created'])
    await newProduct()
    await arrived(endpoint.path, 1)
    const rotated = await call('POST', `/api/admin/webhooks/${endpoint.id}/rotate-secret`, { token: admin.token })
    expect(rotated.status).toBe(200)
    const newSecret = rotated.body.secret as string
    expect(newSecret).not.toBe(endpoint.secret)
    await newProduct()
    await arrived(endpoint.path, 2)
    const [before, during] = receiver.at(endpoint.path)
    expect(before!.headers['webhook-signature']!.split(' ')).toHaveLength(1)
    expect(during!.headers['webhook-signature']!.split(' ')).toHaveLength(2)
    verify(newSecret, during!)
    verify(endpoint.secret, during!)
    expect(() => verify(newSecret, before!)).toThrow()

    await sql`UPDATE webhook_endpoints SET previous_secret_expires_at = now() - interval '1 second' WHERE id = ${endpoint.id}`
    await newProduct()
    await arrived(endpoint.path, 3)
    const after = receiver.at(endpoint.path)[2]!
    verify(newSecret, after)
    expect(() => verify(endpoint.secret, after)).toThrow()
  })

  test('a failed delivery can be retried by hand, with the same webhook-id', async () => {
    let up = false
    const endpoint = await subscribe(['product.created'], () => new Response(null, { status: up ? 200 : 500 }))
    await newProduct()
    const [failed] = await settled(endpoint.id, 1)
    expect(failed).toMatchObject({ status: 'failed', attempts: 3 })
    up = true
    const retried = await call('POST', `/api/admin/webhooks/${endpoint.id}/deliveries/${failed!.id}/retry`, {
      token: admin.token,
    })
    expect(retried.status).toBe(202)
    await arrived(endpoint.path, 4)
    const [row] = await settled(endpoint.id, 1)
    expect(row).toMatchObject({ id: failed!.id, status: 'succeeded', attempts: 4, last_status_code: 200 })
    expect(new Set(receiver.at(endpoint.path).map((arrival) => arrival.headers['webhook-id']))).toEqual(
      new Set([`msg_${failed!.id}`]),
    )
    const failedOnly = await call('GET', `/api/admin/webhooks/${endpoint.id}/deliveries?status=failed`, {
      token: admin.token,
    })
    expect(failedOnly.body).toMatchObject({ data: [], total: 0 })
    expectError(
      await call('POST', `/api/admin/webhooks/${endpoint.id}/deliveries/999999999/retry`, { token: admin.token }),
      404,
    )
    expectError(
      await call('GET', `/api/admin/webhooks/${endpoint.id}/deliveries?status=lost`, { token: admin.token }),
      400,
    )
  })

  test('successful deliveries leave their endpoint row alone unless it had failures to forget', async () => {
    let failing = true
    const endpoint = await subscribe(['product.created'], () => new Response(null, { status: failing ? 500 : 204 }))
    const version = async () =>
      (await sql`SELECT xmin::text AS version, failed_in_a_row FROM webhook_endpoints WHERE id = ${endpoint.id}`)[0]!
    await newProduct()
    await settled(endpoint.id, 1)
    expect((await version()).failed_in_a_row).toBe(1)
    failing = false
    await newProduct()
    await settled(endpoint.id, 2)
    const reset = await version()
    expect(reset.failed_in_a_row).toBe(0)
    // Now at 0: further successes write nothing to the endpoint (no new row version, no lock).
    await Promise.all([newProduct(), newProduct(), newProduct()])
    const rows = await settled(endpoint.id, 5)
    expect(rows.filter((row) => row.status === 'succeeded').length).toBe(4)
    expect(await version()).toEqual(reset)
  })

  test('a retry by hand while the next attempt is scheduled brings it forward: one job per delivery', async () => {
    // The first attempt is told to come back in a minute; later ones fail.
    const endpoint = await subscribe(['product.created'], (nth) =>
      nth === 1
        ? new Response(null, { status: 503, headers: { 'retry-after': '60' } })
        : new Response(null, { status: 500 }),
    )
    await newProduct()
    const [delivery] = (await waitFor(async () => {
      const rows = await deliveries(endpoint.id)
      return rows[0]?.attempts === 1 ? rows : undefined
    }))!
    const queue = queues()[QUEUES.webhooks]
    const liveJobs = async () =>
      (await queue.getJobs(['waiting', 'active', 'delayed', 'prioritized'])).filter(
        (job) => job?.data.deliveryId === delivery!.id,
      )
    expect((await liveJobs()).map((job) => job.id)).toEqual([`webhook-${delivery!.id}`])
    const retried = await call('POST', `/api/admin/webhooks/${endpoint.id}/deliveries/${delivery!.id}/retry`, {
      token: admin.token,
    })
    expect(retried.status).toBe(202)
    expect((await liveJobs()).length).toBeLessThanOrEqual(1)
    const [row] = await settled(endpoint.id, 1)
    // The scheduled attempt ran now, then the schedule went on: three attempts in all, not more.
    expect(row).toMatchObject({ status: 'failed', attempts: 3, last_status_code: 500 })
    await Bun.sleep(200)
    expect(receiver.at(endpoint.path).length).toBe(3)
    expect(await liveJobs()).toEqual([])
  })

  test('nothing is delivered for a change that rolled back', async () => {
    const endpoint = await subscribe(['*'])
    const product = await newProduct({ inventory: 1 })
    const customer = await registerCustomer()
    const refused = await call('POST', '/api/orders', {
      token: customer.token,
      body: { items: [{ product_id: product.id, quantity: 5 }] },
    })
    expect(refused.status).toBe(409)
    await sql
      .begin(async (tx) => {
        await tx`INSERT INTO events (type, payload) VALUES ('product.updated', '{"id": 0}')`
        throw new Error('roll back')
      })
      .catch(() => {})
    // A change that commits afterwards is the marker that everything before it was relayed.
    const marker = await call('PUT', `/api/products/${product.id}`, { token: admin.token, body: { name: 'Marker' } })
    await waitFor(() => typesAt(endpoint.path).includes('product.updated') || undefined)
    await Bun.sleep(200)
    expect(typesAt(endpoint.path).sort()).toEqual(['product.created', 'product.updated'])
    expect(bodyOf(receiver.at(endpoint.path).find((a) => bodyOf(a).type === 'product.updated')!).data).toEqual(
      marker.body,
    )
  })

  test('housekeeping drops events older than 30 days with their deliveries, unless one is still pending', async () => {
    const endpoint = await subscribe(['product.created'])
    const [done, waiting, recent] = await sql<{ id: number }[]>`
      INSERT INTO events (type, payload, created_at)
      VALUES ('webhook.test', '{}', now() - interval '31 days'), ('webhook.test', '{}', now() - interval '31 days'),
        ('webhook.test', '{}', now() - interval '29 days')
      RETURNING id`
    await sql`
      INSERT INTO webhook_deliveries (endpoint_id, event_id, status)
      VALUES (${endpoint.id}, ${done!.id}, 'succeeded'), (${endpoint.id}, ${waiting!.id}, 'pending')`
    expect((await housekeeping()).events).toBeGreaterThanOrEqual(1)
    const left = await sql`SELECT id FROM events WHERE id IN ${sql([done!.id, waiting!.id, recent!.id])} ORDER BY id`
    expect(left.map((row) => row.id)).toEqual([waiting!.id, recent!.id])
    expect((await sql`SELECT id FROM webhook_deliveries WHERE event_id = ${done!.id}`).length).toBe(0)
  })

  test('the webhooks queue is in /api/admin/queues, and attempts are counted in the worker’s metrics', async () => {
    const reply = await call('GET', '/api/admin/queues', { token: admin.token })
    expect(reply.status).toBe(200)
    expect(reply.body.queues.webhooks).toMatchObject({ waiting: expect.any(Number), failed: expect.any(Number) })
    const metrics = await workerRegistry.metrics()
    expect(metrics).toMatch(/webhook_attempts_total\{outcome="succeeded"\} [1-9]/)
    expect(metrics).toMatch(/webhook_attempts_total\{outcome="retrying"\} [1-9]/)
    expect(metrics).toMatch(/webhook_attempts_total\{outcome="gone"\} [1-9]/)
  })
})

describe('targets resolved once per attempt, and the request pinned to the checked address', () => {
  /** Runs `during` with the private-network guard on, as in production, and DNS answered by `resolve`. */
  async function guarded(resolve: Resolver, during: () => Promise<void>) {
    const allowed = config.WEBHOOK_ALLOW_PRIVATE_NETWORKS
    config.WEBHOOK_ALLOW_PRIVATE_NETWORKS = false
    const restore = useResolver(resolve)
    try {
      await during()
    } finally {
      restore()
      config.WEBHOOK_ALLOW_PRIVATE_NETWORKS = allowed
    }
  }

  test('a name that answers public, then loopback (DNS rebinding), never reaches loopback', async () => {
    const host = 'rebind.example.com'
    const asked: string[] = []
    // TTL 0: a public address on odd questions, loopback on even ones.
    const rebinding: Resolver = async (name) => {
      asked.push(name)
      return asked.length % 2 ? ['93.184.216.34'] : ['127.0.0.1']
    }
    await guarded(rebinding, async () => {
      const created = await call('POST', '/api/admin/webhooks', {
        token: admin.token,
        body: { url: `http://${host}:${receiver.port}/rebind`, events: ['product.created'] },
      })
      expect(created.status).toBe(201)
      try {
        await newProduct()
        const [row] = await settled(created.body.id, 1)
        const attempts = Number(process.env.WEBHOOK_MAX_ATTEMPTS)
        expect(row).toMatchObject({ status: 'failed', attempts })
        // One question at create, then exactly one per attempt: the connection never asks again.
        expect(asked).toEqual(Array(1 + attempts).fill(host))
        expect(receiver.at('/rebind')).toEqual([])
        expect(row!.last_error).not.toContain('127.0.0.1')
      } finally {
        await call('DELETE', `/api/admin/webhooks/${created.body.id}`, { token: admin.token })
      }
    })
  })

  test('a name that resolves to a private address at send time is refused without connecting; the log names no address', async () => {
    // Unknown when it was saved (accepted then), a private address inside the deployment.
    let saved = false
    const insideTheDeployment: Resolver = async () => {
      if (!saved) throw new Error('ENOTFOUND')
      return ['10.0.0.7']
    }
    await guarded(insideTheDeployment, async () => {
      const created = await call('POST', '/api/admin/webhooks', {
        token: admin.token,
        body: { url: 'https://hooks.corp.example/orders', events: ['product.created'] },
      })
      expect(created.status).toBe(201)
      saved = true
      try {
        await newProduct()
        const [row] = await settled(created.body.id, 1)
        expect(row).toMatchObject({ status: 'failed', last_status_code: null })
        expect(row!.last_error).toBe('Refused: hooks.corp.example resolves to a private address, not a public one')
        // The same answer at create time is refused with the same reason, and no address.
        const update = await call('PATCH', `/api/admin/webhooks/${created.body.id}`, {
          token: admin.token,
          body: { url: 'https://hooks.corp.example/v2' },
        })
        expectError(update, 400, 'url must point to a public address: hooks.corp.example resolves to a private address')
        expect(update.body.error).not.toContain('10.0.0.7')
      } finally {
        await call('DELETE', `/api/admin/webhooks/${created.body.id}`, { token: admin.token })
      }
    })
  })

  test('the request goes to the resolved address with the URL’s own Host header', async () => {
    // A second receiver on another loopback address, which no system resolver knows by this name.
    const pinnedReceiver = webhookReceiver().start(0, '127.0.0.2')
    const restore = useResolver(async () => ['127.0.0.2'])
    try {
      const created = await call('POST', '/api/admin/webhooks', {
        token: admin.token,
        body: { url: pinnedReceiver.url('/pinned', 'hooks.shop.test'), events: ['product.created'] },
      })
      expect(created.status).toBe(201)
      try {
        await newProduct()
        await settled(created.body.id, 1)
        const [arrival] = pinnedReceiver.at('/pinned')
        expect(arrival?.headers.host).toBe(`hooks.shop.test:${pinnedReceiver.port}`)
        expect((await deliveries(created.body.id))[0]).toMatchObject({ status: 'succeeded', last_status_code: 204 })
      } finally {
        await call('DELETE', `/api/admin/webhooks/${created.body.id}`, { token: admin.token })
      }
    } finally {
      restore()
      pinnedReceiver.stop()
    }
  })
})

describe('with the API and the worker as processes', () => {
  afterEach(stopServices)
  const adminCall = (base: string, method: string, path: string, body?: unknown) =>
    fetch(`${base}${path}`, {
      method,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${admin.token}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    })

  test('a Redis outage and a receiver outage lose nothing', async () => {
    // The processes below relay the shared outbox: this file's own relay and worker step aside.
    await stopInProcessPipeline()
    const redisPort = freePort()
    const redisUrl = `redis://127.0.0.1:${redisPort}`
    const env = {
      REDIS_URL: redisUrl,
      QUEUE_PREFIX: `webhooks-outage-${process.pid}`,
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
      WEBHOOK_BACKOFF_MS: '200',
      WEBHOOK_MAX_ATTEMPTS: '10',
    }
    let redis = startRedis(redisPort)
    const api = await startApi(env)
    startWorker(env)
    const late = webhookReceiver()
    const latePort = freePort()
    const { secret, id } = await createWebhook({ url: `http://127.0.0.1:${latePort}/late`, events: ['order.placed'] })

    redis.child.kill('SIGKILL')
    await redis.child.exited
    const product = await newProduct({ inventory: 100 })
    const customer = await registerCustomer()
    const orders = await Promise.all(
      Array.from({ length: 10 }, () =>
        fetch(`${api.base}/api/orders`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${customer.token}` },
          body: JSON.stringify({ items: [{ product_id: product.id, quantity: 1 }] }),
        }).then(async (response) => ({ status: response.status, body: (await response.json()) as { id: number } })),
      ),
    )
    expect(orders.map((order) => order.status)).toEqual(Array(10).fill(201))
    // Redis back, the receiver still down: attempts fail and are retried...
    redis = startRedis(redisPort)
    await waitFor(
      async () =>
        (
          await sql`SELECT count(*)::int AS count FROM webhook_deliveries WHERE endpoint_id = ${id} AND attempts > 0`
        )[0]!.count === 10 || undefined,
      30_000,
      100,
    )
    // ...until it is back.
    late.start(latePort)
    try {
      await waitFor(
        () => new Set(late.at('/late').map((a) => a.headers['webhook-id'])).size === 10 || undefined,
        30_000,
        50,
      )
      const delivered = late.at('/late').map((arrival) => (verify(secret, arrival) as { data: { id: number } }).data.id)
      expect(new Set(delivered)).toEqual(new Set(orders.map((order) => order.body.id)))
    } finally {
      late.stop()
    }
  })

  test('with WEBHOOK_ALLOW_PRIVATE_NETWORKS off, every non-public address class is refused on create and update', async () => {
    const env = { QUEUE_PREFIX: `webhooks-ssrf-${process.pid}`, WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'false' }
    const api = await startApi(env)
    const refused = [
      'http://127.0.0.1:8080/hook',
      'http://localhost/hook',
      'http://[::1]/hook',
      'http://10.0.0.5/hook',
      'http://172.16.3.4/hook',
      'http://192.168.1.10/hook',
      'http://[fc00::1]/hook',
      'http://[fd12:3456::1]/hook',
      'http://169.254.169.254/latest/meta-data',
      'http://[fe80::1]/hook',
      'http://0.0.0.0/hook',
      'http://[::]/hook',
      'http://[::ffff:127.0.0.1]/hook',
      'http://2130706433/hook',
      'http://[::127.0.0.1]/hook',
      'http://[::a00:1]/hook',
      'http://localhost./hook',
      'http://foo.localhost/hook',
      'http://postgres/hook',
      'http://redis:6379/hook',
      'http://host.docker.internal/hook',
      'http://printer.local/hook',
    ]
    for (const url of refused) {
      const response = await adminCall(api.base, 'POST', '/api/admin/webhooks', { url, events: ['*'] })
      expect({ url, status: response.status }).toEqual({ url, status: 400 })
      const { error } = (await response.json()) as { error: string }
      expect(error).toMatch(/public address/)
      // The reason names the host and the kind of address, never an address the name resolved to.
      if (!/\/\/[\d[]/.test(url)) expect(error).not.toMatch(/\d+\.\d+\.\d+\.\d+|::/)
    }
    const allowed = await adminCall(api.base, 'POST', '/api/admin/webhooks', {
      url: 'https://93.184.216.34/hook',
      events: ['*'],
    })
    expect(allowed.status).toBe(201)
    const { id } = (await allowed.json()) as { id: number }
    const update = await adminCall(api.base, 'PATCH', `/api/admin/webhooks/${id}`, { url: 'http://10.1.1.1/hook' })
    expect(update.status).toBe(400)
    await adminCall(api.base, 'DELETE', `/api/admin/webhooks/${id}`)
  })

  test('with the guard on, a delivery to a private address fails at send time without connecting', async () => {
    const env = {
      QUEUE_PREFIX: `webhooks-ssrf-send-${process.pid}`,
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'false',
      WEBHOOK_MAX_ATTEMPTS: '1',
    }
    await startApi(env)
    startWorker(env)
    // Saved while private targets were allowed (or a name that resolved elsewhere then).
    const { id } = await createWebhook({ url: receiver.url('/private'), events: ['product.created'] })
    await newProduct()
    const [row] = await settled(id, 1)
    expect(row).toMatchObject({ status: 'failed', attempts: 1, last_status_code: null })
    expect(row!.last_error).toBe('Refused: 127.0.0.1 is a loopback address, not a public one')
    expect(receiver.at('/private')).toEqual([])
  })
})
