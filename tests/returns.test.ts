import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Webhook as Verifier } from 'standardwebhooks'
import { confirmOrders } from '../src/modules/orders/jobs'
import { queues } from '../src/outbox/queues'
import { OutboxRelay } from '../src/outbox/relay'
import { startWorkers } from '../src/worker'
import {
  CountingMailer,
  call,
  type Account,
  createProduct,
  expectError,
  inventoryOf,
  shopWith,
  sql,
  waitFor,
  outboxItems,
} from './helpers'
import { webhookReceiver } from './webhook-receiver'

// Returns of delivered orders: requested by the owner or an admin, then received (restocked
// exactly once) or rejected, each change audited, sent as a webhook and told to the customer.

let admin: Account
let owner: Account
let stranger: Account
let relay: OutboxRelay | undefined
let workers: ReturnType<typeof startWorkers> | undefined
const receiver = webhookReceiver().start()
/** The endpoint the first test subscribes, for return events; its secret verifies what arrives. */
let hookSecret = ''

beforeAll(async () => {
  ;({ admin, owner, stranger } = await shopWith('owner', 'stranger'))
})

afterAll(async () => {
  await relay?.stop()
  await workers?.close()
  receiver.stop()
  await sql`DELETE FROM webhook_endpoints`
})

const shipment = { carrier: 'DHL', tracking_number: 'JD0002249' }

/** An order of `lines` ([product, quantity]) taken to delivered along the lifecycle. */
async function deliveredOrder(lines: [number, number][]) {
  const placed = await call('POST', '/api/orders', {
    token: owner.token,
    body: { items: lines.map(([product_id, quantity]) => ({ product_id, quantity })) },
  })
  expect(placed.status).toBe(201)
  const id = placed.body.id as number
  await confirmOrders([id], new CountingMailer())
  for (const body of [{ status: 'processing' }, { status: 'shipped', ...shipment }, { status: 'delivered' }])
    expect((await call('POST', `/api/orders/${id}/status`, { token: admin.token, body })).status).toBe(200)
  return id
}

const request = (orderId: number, body: unknown, token = owner.token) =>
  call('POST', `/api/orders/${orderId}/returns`, { token, body })
const receive = (id: number, body: unknown = {}, token = admin.token) =>
  call('POST', `/api/returns/${id}/receive`, { token, body })
const reject = (id: number, body: unknown = { note: 'Worn' }, token = admin.token) =>
  call('POST', `/api/returns/${id}/reject`, { token, body })
const countReturns = async () => (await sql<{ count: number }[]>`SELECT count(*)::int AS count FROM returns`)[0]!.count
const returnedUnits = async (orderId: number) =>
  (
    await sql<{ units: number }[]>`
      SELECT coalesce(sum(i.quantity), 0)::int AS units FROM return_items i JOIN returns r ON r.id = i.return_id
      WHERE r.order_id = ${orderId} AND r.status <> 'rejected'`
  )[0]!.units

describe('a return, request to received', () => {
  test('priced from the order, listed with it, received with restock; audited, notified, sent as webhooks', async () => {
    relay = new OutboxRelay(queues(), { pollIntervalMs: 100 }).start()
    workers = startWorkers({ mailer: new CountingMailer(), concurrency: 4 })
    const hook = await call('POST', '/api/admin/webhooks', {
      token: admin.token,
      body: {
        url: receiver.url('/returns'),
        events: ['order.delivered', 'return.requested', 'return.received', 'return.rejected', 'product.low_stock'],
      },
    })
    expect(hook.status).toBe(201)
    hookSecret = hook.body.secret
    const product = await createProduct(admin.token, { inventory: 10, price_cents: 1250, low_stock_threshold: 8 })
    const other = await createProduct(admin.token, { inventory: 10, price_cents: 300 })
    const orderId = await deliveredOrder([
      [product.id, 3],
      [other.id, 1],
    ])
    await call('PUT', `/api/products/${product.id}`, { token: admin.token, body: { price_cents: 9999 } })

    const requested = await request(orderId, {
      items: [
        { product_id: product.id, quantity: 1 },
        { product_id: product.id, quantity: 1 },
      ],
      reason: 'Too small',
    })
    expect(requested.status).toBe(201)
    expect(requested.body).toEqual({
      id: expect.any(Number),
      order_id: orderId,
      status: 'requested',
      items: [{ product_id: product.id, name: product.name, quantity: 2, unit_price_cents: 1250, refund_cents: 2500 }],
      refund_cents: 2500,
      reason: 'Too small',
      note: null,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    })
    const listed = await call('GET', `/api/orders/${orderId}/returns`, { token: owner.token })
    expect(listed.body).toEqual({ data: [requested.body] })

    expect(await inventoryOf(product.id)).toBe(7)
    const received = await receive(requested.body.id, { note: 'Looks unused' })
    expect(received.status).toBe(200)
    expect(received.body).toMatchObject({ status: 'received', note: 'Looks unused', refund_cents: 2500 })
    expect(await inventoryOf(product.id)).toBe(9)
    expect(await inventoryOf(other.id)).toBe(9)

    // The worker's effects: audit entries, the customer's message, the webhooks (signed).
    await waitFor(async () => {
      const [row] = await sql<{ count: number }[]>`
        SELECT count(*)::int AS count FROM audit_logs
        WHERE entity = 'return' AND entity_id = ${requested.body.id} AND action IN ('return.requested', 'return.received')`
      return row!.count === 2 || undefined
    })
    const [audit] = await sql<{ details: { restocked: unknown } }[]>`
      SELECT details FROM audit_logs WHERE entity = 'return' AND entity_id = ${requested.body.id} AND action = 'return.received'`
    expect(audit!.details.restocked).toEqual([{ productId: product.id, quantity: 2 }])
    const message = await waitFor(async () =>
      (
        await sql<{ subject: string; sent_at: Date | null }[]>`
            SELECT subject, sent_at FROM notifications WHERE dedupe_key = ${`return-received:${requested.body.id}`}`
      ).find((row) => row.sent_at),
    )
    expect(message!.subject).toContain(`return #${requested.body.id}`)
    await waitFor(() => receiver.at('/returns').length >= 4 || undefined)
    const arrivals = receiver.at('/returns')
    for (const arrival of arrivals) new Verifier(hook.body.secret).verify(arrival.body, arrival.headers)
    const bodies = arrivals.map((arrival) => JSON.parse(arrival.body))
    expect(bodies.map((body) => body.type).sort()).toEqual([
      'order.delivered',
      'product.low_stock',
      'return.received',
      'return.requested',
    ])
    expect(bodies.find((body) => body.type === 'return.received').data).toEqual(received.body)
    expect(bodies.find((body) => body.type === 'product.low_stock').data).toMatchObject({
      id: product.id,
      inventory: 7,
      low_stock_threshold: 8,
    })
  })

  test('rejected: note required, the customer is told, and the units can be requested again', async () => {
    const product = await createProduct(admin.token, { inventory: 10 })
    const orderId = await deliveredOrder([[product.id, 2]])
    const first = await request(orderId, { items: [{ product_id: product.id, quantity: 2 }] })
    expect(first.status).toBe(201)
    expectError(await request(orderId, { items: [{ product_id: product.id, quantity: 1 }] }), 409)
    for (const body of [{}, { note: '' }, { note: '   ' }, { note: 'n'.repeat(501) }, { note: 5 }])
      expectError(await reject(first.body.id, body), 400)
    const rejected = await reject(first.body.id, { note: ' Worn twice ' })
    expect(rejected.status).toBe(200)
    expect(rejected.body).toMatchObject({ status: 'rejected', note: 'Worn twice' })
    const arrival = await waitFor(() =>
      receiver.at('/returns').find((arrival) => {
        const body = JSON.parse(arrival.body)
        return body.type === 'return.rejected' && body.data.id === first.body.id
      }),
    )
    new Verifier(hookSecret).verify(arrival!.body, arrival!.headers)
    expect(JSON.parse(arrival!.body).data).toEqual(rejected.body)
    const told = await waitFor(async () =>
      (
        await sql<{ body: string; sent_at: Date | null }[]>`
            SELECT body, sent_at FROM notifications WHERE dedupe_key = ${`return-rejected:${first.body.id}`}`
      ).find((row) => row.sent_at),
    )
    expect(told!.body).toContain('Worn twice')
    expect(await inventoryOf(product.id)).toBe(8)
    const [job] = await sql<{ count: number }[]>`
      SELECT count(*)::int AS count FROM outbox WHERE queue = 'return-notification'
        AND payload = ${JSON.stringify({ returnId: first.body.id, kind: 'rejected' })}::jsonb`
    expect(job!.count).toBe(1)
    expect((await request(orderId, { items: [{ product_id: product.id, quantity: 2 }] })).status).toBe(201)
    // Final states.
    expectError(await receive(first.body.id), 409)
    expectError(await reject(first.body.id), 409)
  })

  test('restock false: received, stock untouched; a product deleted before is not restocked', async () => {
    const kept = await createProduct(admin.token, { inventory: 10 })
    const gone = await createProduct(admin.token, { inventory: 10 })
    const orderId = await deliveredOrder([
      [kept.id, 2],
      [gone.id, 2],
    ])
    const noRestock = await request(orderId, { items: [{ product_id: kept.id, quantity: 1 }] })
    expect((await receive(noRestock.body.id, { restock: false })).body.status).toBe('received')
    expect(await inventoryOf(kept.id)).toBe(8)
    const both = await request(orderId, {
      items: [
        { product_id: kept.id, quantity: 1 },
        { product_id: gone.id, quantity: 2 },
      ],
    })
    expect((await call('DELETE', `/api/products/${gone.id}`, { token: admin.token })).status).toBe(204)
    expect((await receive(both.body.id)).status).toBe(200)
    expect(await inventoryOf(kept.id)).toBe(9)
    expect(await inventoryOf(gone.id)).toBe(8)
  })

  test('an admin may request for the customer; the return is the owner’s', async () => {
    const product = await createProduct(admin.token, { inventory: 10 })
    const orderId = await deliveredOrder([[product.id, 1]])
    const made = await request(orderId, { items: [{ product_id: product.id, quantity: 1 }] }, admin.token)
    expect(made.status).toBe(201)
    const [row] = await sql<{ user_id: number }[]>`SELECT user_id FROM returns WHERE id = ${made.body.id}`
    expect(row!.user_id).toBe(owner.user.id)
  })
})

describe('when a return can be asked for', () => {
  test('only a delivered order (409 otherwise), within RETURN_WINDOW_DAYS of delivered_at', async () => {
    const product = await createProduct(admin.token, { inventory: 10 })
    const pending = await call('POST', '/api/orders', {
      token: owner.token,
      body: { items: [{ product_id: product.id, quantity: 1 }] },
    })
    const before = await countReturns()
    expectError(await request(pending.body.id, { items: [{ product_id: product.id, quantity: 1 }] }), 409, /delivered/)
    const orderId = await deliveredOrder([[product.id, 1]])
    await sql`UPDATE orders SET delivered_at = now() - interval '31 days' WHERE id = ${orderId}`
    expectError(await request(orderId, { items: [{ product_id: product.id, quantity: 1 }] }), 409, /window/)
    await sql`UPDATE orders SET delivered_at = now() - interval '29 days' WHERE id = ${orderId}`
    expect((await request(orderId, { items: [{ product_id: product.id, quantity: 1 }] })).status).toBe(201)
    expect(await countReturns()).toBe(before + 1)
  })

  test('never more than delivered minus what returns that are not rejected hold', async () => {
    const product = await createProduct(admin.token, { inventory: 10 })
    const orderId = await deliveredOrder([[product.id, 5]])
    expect((await request(orderId, { items: [{ product_id: product.id, quantity: 3 }] })).status).toBe(201)
    expectError(
      await request(orderId, { items: [{ product_id: product.id, quantity: 3 }] }),
      409,
      `Product ${product.id}: at most 2 more can be returned from order ${orderId}`,
    )
    expectError(
      await request(orderId, {
        items: [
          { product_id: product.id, quantity: 1 },
          { product_id: product.id, quantity: 2 },
        ],
      }),
      409,
    )
    expect((await request(orderId, { items: [{ product_id: product.id, quantity: 2 }] })).status).toBe(201)
    expect(await returnedUnits(orderId)).toBe(5)
  })
})

describe('concurrency', () => {
  test('many requests for one order at once never together exceed what was delivered', async () => {
    const a = await createProduct(admin.token, { inventory: 100 })
    const b = await createProduct(admin.token, { inventory: 100 })
    const orderId = await deliveredOrder([
      [a.id, 10],
      [b.id, 4],
    ])
    const replies = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        request(orderId, {
          items:
            i % 2
              ? [{ product_id: a.id, quantity: 1 }]
              : [
                  { product_id: a.id, quantity: 1 },
                  { product_id: b.id, quantity: 1 },
                ],
        }),
      ),
    )
    expect(replies.filter((reply) => reply.status >= 500)).toHaveLength(0)
    expect(replies.every((reply) => reply.status === 201 || reply.status === 409)).toBe(true)
    const [units] = await sql<{ a: number; b: number }[]>`
      SELECT coalesce(sum(i.quantity) FILTER (WHERE i.product_id = ${a.id}), 0)::int AS a,
             coalesce(sum(i.quantity) FILTER (WHERE i.product_id = ${b.id}), 0)::int AS b
      FROM return_items i JOIN returns r ON r.id = i.return_id WHERE r.order_id = ${orderId}`
    expect(units).toEqual({ a: 10, b: 4 })
    const created = replies.filter((reply) => reply.status === 201)
    const claimed = created.flatMap((reply) => reply.body.items).reduce((sum, item) => sum + item.quantity, 0)
    expect(claimed).toBe(14)
  })

  test('of concurrent receives exactly one succeeds, and the units go back once', async () => {
    const product = await createProduct(admin.token, { inventory: 20 })
    const orderId = await deliveredOrder([[product.id, 6]])
    const made = await request(orderId, { items: [{ product_id: product.id, quantity: 6 }] })
    const replies = await Promise.all([
      ...Array.from({ length: 12 }, () => receive(made.body.id)),
      ...Array.from({ length: 4 }, () => reject(made.body.id)),
    ])
    expect(replies.filter((reply) => reply.status >= 500)).toHaveLength(0)
    const winners = replies.filter((reply) => reply.status === 200)
    expect(winners).toHaveLength(1)
    expect(replies.filter((reply) => reply.status === 409)).toHaveLength(15)
    expect(await inventoryOf(product.id)).toBe(winners[0]!.body.status === 'received' ? 20 : 14)
    const [events] = await sql<{ count: number }[]>`
      SELECT count(*)::int AS count FROM events WHERE type IN ('return.received', 'return.rejected')
        AND (payload->>'id')::int = ${made.body.id}`
    expect(events!.count).toBe(1)
  })

  test('a receive racing a product delete: received once, restocked only if the product was still there', async () => {
    for (let round = 0; round < 5; round++) {
      const product = await createProduct(admin.token, { inventory: 10 })
      const orderId = await deliveredOrder([[product.id, 3]])
      const made = await request(orderId, { items: [{ product_id: product.id, quantity: 3 }] })
      const [received, deleted] = await Promise.all([
        receive(made.body.id),
        call('DELETE', `/api/products/${product.id}`, { token: admin.token }),
      ])
      expect(received.status).toBe(200)
      expect(deleted.status).toBe(204)
      const [audit] = await sql<{ restocked: { quantity: number }[] }[]>`
        SELECT payload->'details'->'restocked' AS restocked FROM ${outboxItems}
        WHERE payload->>'action' = 'return.received' AND (payload->>'entityId')::int = ${made.body.id}`
      const restocked = audit!.restocked.reduce((sum, line) => sum + line.quantity, 0)
      expect([0, 3]).toContain(restocked)
      expect(await inventoryOf(product.id)).toBe(7 + restocked)
    }
  })
})

describe('who may do what', () => {
  test('401 without a token, 404 for a stranger, 403 for a customer on admin routes, 404 for unknown ids', async () => {
    const product = await createProduct(admin.token, { inventory: 10 })
    const orderId = await deliveredOrder([[product.id, 2]])
    const made = await request(orderId, { items: [{ product_id: product.id, quantity: 1 }] })
    const body = { items: [{ product_id: product.id, quantity: 1 }] }
    expectError(await call('POST', `/api/orders/${orderId}/returns`, { body }), 401)
    expectError(await call('GET', `/api/orders/${orderId}/returns`), 401)
    expectError(await call('GET', '/api/returns'), 401)
    expectError(await call('POST', `/api/returns/${made.body.id}/receive`, { body: {} }), 401)
    expectError(await request(orderId, body, stranger.token), 404)
    expectError(await call('GET', `/api/orders/${orderId}/returns`, { token: stranger.token }), 404)
    expectError(await call('GET', '/api/returns', { token: owner.token }), 403)
    expectError(await receive(made.body.id, {}, owner.token), 403)
    expectError(await reject(made.body.id, { note: 'x' }, owner.token), 403)
    expectError(await request(2_147_483_000, body), 404)
    expectError(await receive(2_147_483_000), 404)
    expectError(await reject(2_147_483_000), 404)
    expect(await inventoryOf(product.id)).toBe(8)
    expect((await call('GET', `/api/orders/${orderId}/returns`, { token: owner.token })).body.data).toHaveLength(1)
  })

  test('GET /api/returns: paged, newest first, filtered by status', async () => {
    const product = await createProduct(admin.token, { inventory: 10 })
    const orderId = await deliveredOrder([[product.id, 3]])
    const ids: number[] = []
    for (let i = 0; i < 3; i++)
      ids.push((await request(orderId, { items: [{ product_id: product.id, quantity: 1 }] })).body.id)
    await reject(ids[1]!)
    const page = await call('GET', '/api/returns?limit=2', { token: admin.token })
    expect(page.status).toBe(200)
    expect(page.body.data.map((r: { id: number }) => r.id)).toEqual([ids[2], ids[1]])
    expect(page.body).toMatchObject({ page: 1, limit: 2 })
    const rejected = await call('GET', '/api/returns?status=rejected&limit=50', { token: admin.token })
    expect(rejected.body.data.every((r: { status: string }) => r.status === 'rejected')).toBe(true)
    expect(rejected.body.data.map((r: { id: number }) => r.id)).toContain(ids[1])
    expectError(await call('GET', '/api/returns?status=lost', { token: admin.token }), 400)
    expectError(await call('GET', '/api/returns?page=0', { token: admin.token }), 400)
  })
})

describe('bad input: 400, nothing changes', () => {
  let orderId: number
  let productId: number
  beforeAll(async () => {
    productId = (await createProduct(admin.token, { inventory: 10 })).id
    orderId = await deliveredOrder([[productId, 2]])
  })
  const line = () => ({ product_id: productId, quantity: 1 })
  test.each([
    ['no items', () => ({})],
    ['empty items', () => ({ items: [] })],
    ['51 items', () => ({ items: Array.from({ length: 51 }, line) })],
    ['quantity 0', () => ({ items: [{ ...line(), quantity: 0 }] })],
    ['quantity 1001', () => ({ items: [{ ...line(), quantity: 1001 }] })],
    ['a fractional quantity', () => ({ items: [{ ...line(), quantity: 1.5 }] })],
    ['a quantity as a string', () => ({ items: [{ ...line(), quantity: '1' }] })],
    ['a product id of 0', () => ({ items: [{ ...line(), product_id: 0 }] })],
    [
      'a product that is not a line of the order',
      () => ({ items: [line(), { product_id: 2_147_483_000, quantity: 1 }] }),
    ],
    ['a reason of 501 characters', () => ({ items: [line()], reason: 'r'.repeat(501) })],
    ['a reason that is a number', () => ({ items: [line()], reason: 42 })],
    ['items that are a string', () => ({ items: 'all of them' })],
  ])('request with %s', async (_, body) => {
    const before = await countReturns()
    expectError(await request(orderId, body()), 400)
    expect(await countReturns()).toBe(before)
  })

  test('malformed JSON and bad ids', async () => {
    const before = await countReturns()
    expectError(
      await call('POST', `/api/orders/${orderId}/returns`, {
        token: owner.token,
        rawBody: '{"items":',
        headers: { 'content-type': 'application/json' },
      }),
      400,
    )
    expectError(await call('POST', '/api/orders/abc/returns', { token: owner.token, body: { items: [line()] } }), 400)
    expectError(await call('POST', '/api/returns/0/receive', { token: admin.token, body: {} }), 400)
    expectError(await receive(1, { restock: 'yes' }), 400)
    expectError(await receive(1, { note: 'n'.repeat(501) }), 400)
    expect(await countReturns()).toBe(before)
  })
})
