import { beforeAll, describe, expect, test } from 'bun:test'
import { confirmOrders, notifyOrder } from '../src/modules/orders/jobs'
import { allowedMoves, TRANSITIONS } from '../src/modules/orders/lifecycle'
import type { OrderStatus } from '../src/modules/orders/model'
import {
  call,
  CountingMailer,
  countWhere,
  type Account,
  createProduct,
  expectError,
  inventoryOf,
  shopWith,
  sql,
  outboxItems,
} from './helpers'

// The order lifecycle through HTTP: every allowed move, every refused one, who may make it,
// and what each move leaves behind (history, audit and notification jobs, events).

let admin: Account
let owner: Account
let stranger: Account
let productId: number

beforeAll(async () => {
  ;({ admin, owner, stranger } = await shopWith('owner', 'stranger'))
  productId = (await createProduct(admin.token, { inventory: 10_000 })).id
})

async function placed() {
  const reply = await call('POST', '/api/orders', {
    token: owner.token,
    body: { items: [{ product_id: productId, quantity: 2 }] },
  })
  expect(reply.status).toBe(201)
  return reply.body.id as number
}

const move = (id: number, body: Record<string, unknown>, token = admin.token) =>
  call('POST', `/api/orders/${id}/status`, { token, body })
const cancel = (id: number, token: string) => call('POST', `/api/orders/${id}/cancel`, { token })
const shipment = { carrier: 'DHL', tracking_number: 'JD0002249' }

/** An order brought to `status` along the lifecycle's own path. */
async function orderIn(status: OrderStatus) {
  const id = await placed()
  const path: Record<OrderStatus, (() => Promise<unknown>)[]> = {
    pending: [],
    confirmed: [() => confirmOrders([id], new CountingMailer())],
    processing: [() => confirmOrders([id], new CountingMailer()), () => move(id, { status: 'processing' })],
    shipped: [
      () => confirmOrders([id], new CountingMailer()),
      () => move(id, { status: 'processing' }),
      () => move(id, { status: 'shipped', ...shipment }),
    ],
    delivered: [
      () => confirmOrders([id], new CountingMailer()),
      () => move(id, { status: 'processing' }),
      () => move(id, { status: 'shipped', ...shipment }),
      () => move(id, { status: 'delivered' }),
    ],
    cancelled: [() => cancel(id, owner.token)],
  }
  for (const step of path[status]) await step()
  const [row] = await sql`SELECT status FROM orders WHERE id = ${id}`
  expect(row!.status).toBe(status)
  return id
}

const STATUSES: OrderStatus[] = ['pending', 'confirmed', 'processing', 'shipped', 'delivered', 'cancelled']

describe('every move the table allows', () => {
  test('confirmed → processing → shipped (with its shipment) → delivered, by an admin', async () => {
    const id = await orderIn('confirmed')
    const processing = await move(id, { status: 'processing', note: 'picking' })
    expect(processing.status).toBe(200)
    expect(processing.body).toMatchObject({ id, status: 'processing', shipment: null, delivered_at: null })
    const shipped = await move(id, { status: 'shipped', ...shipment })
    expect(shipped.status).toBe(200)
    expect(shipped.body.status).toBe('shipped')
    expect(shipped.body.shipment).toEqual({ ...shipment, shipped_at: expect.any(String) })
    const delivered = await move(id, { status: 'delivered' })
    expect(delivered.status).toBe(200)
    expect(delivered.body.status).toBe('delivered')
    expect(new Date(delivered.body.delivered_at).toISOString()).toBe(delivered.body.delivered_at)
    expect(delivered.body.shipment).toEqual(shipped.body.shipment)
  })

  for (const from of ['pending', 'confirmed'] as const)
    for (const who of ['owner', 'admin'] as const)
      test(`${from} → cancelled by the ${who}, restocked once`, async () => {
        const id = await orderIn(from)
        const before = await inventoryOf(productId)
        const reply = await cancel(id, who === 'owner' ? owner.token : admin.token)
        expect(reply.status).toBe(200)
        expect(reply.body.status).toBe('cancelled')
        expect(await inventoryOf(productId)).toBe(before + 2)
      })

  test('processing → cancelled by an admin only; the owner gets 409', async () => {
    const id = await orderIn('processing')
    const refused = await cancel(id, owner.token)
    expectError(refused, 409)
    expect(refused.body).toMatchObject({ status: 'processing', allowed: ['shipped', 'cancelled'] })
    const before = await inventoryOf(productId)
    expect((await cancel(id, admin.token)).status).toBe(200)
    expect(await inventoryOf(productId)).toBe(before + 2)
  })

  test('the table is the one the code checks', () => {
    expect(TRANSITIONS.map((t) => `${t.from}→${t.to}:${t.by.join('+')}`)).toEqual([
      'pending→confirmed:worker',
      'pending→cancelled:owner+admin',
      'confirmed→cancelled:owner+admin',
      'confirmed→processing:admin',
      'processing→shipped:admin',
      'processing→cancelled:admin',
      'shipped→delivered:admin',
    ])
  })
})

describe('every move the table refuses → 409 with the status and the allowed moves', () => {
  for (const from of STATUSES)
    test(`from ${from}`, async () => {
      const id = await orderIn(from)
      const targets = (['processing', 'shipped', 'delivered'] as const).filter(
        (to) => !allowedMoves(from, 'admin').includes(to),
      )
      for (const to of targets) {
        const reply = await move(id, { status: to, ...shipment })
        expectError(reply, 409)
        expect(reply.body).toEqual({ error: expect.any(String), status: from, allowed: allowedMoves(from, 'admin') })
      }
      if (!allowedMoves(from, 'admin').includes('cancelled')) {
        const reply = await cancel(id, admin.token)
        expectError(reply, 409)
        expect(reply.body.status).toBe(from)
      }
      const [row] = await sql`SELECT status FROM orders WHERE id = ${id}`
      expect(row!.status).toBe(from)
    })
})

describe('who may move an order', () => {
  test('POST /status: customer 403, no token 401, unknown order 404, malformed id 400', async () => {
    const id = await orderIn('confirmed')
    expectError(await move(id, { status: 'processing' }, owner.token), 403)
    expectError(await call('POST', `/api/orders/${id}/status`, { body: { status: 'processing' } }), 401)
    expectError(await move(2_147_483_000, { status: 'processing' }), 404)
    expectError((await move(0, { status: 'processing' })) as never, 400)
    const [row] = await sql`SELECT status FROM orders WHERE id = ${id}`
    expect(row!.status).toBe('confirmed')
  })

  test('history: the owner and admins read it; anyone else gets 404', async () => {
    const id = await placed()
    expect((await call('GET', `/api/orders/${id}/history`, { token: owner.token })).status).toBe(200)
    expect((await call('GET', `/api/orders/${id}/history`, { token: admin.token })).status).toBe(200)
    expectError(await call('GET', `/api/orders/${id}/history`, { token: stranger.token }), 404)
    expectError(await call('GET', `/api/orders/${id}/history`), 401)
    expectError(await cancel(id, stranger.token), 404)
  })
})

describe('concurrency', () => {
  test('20 identical moves at once: one 200, nineteen 409, one history entry', async () => {
    const id = await orderIn('confirmed')
    const replies = await Promise.all(Array.from({ length: 20 }, () => move(id, { status: 'processing' })))
    expect(replies.map((reply) => reply.status).sort()).toEqual([200, ...Array(19).fill(409)])
    expect(
      await countWhere(
        sql`SELECT count(*)::int AS count FROM order_status_history WHERE order_id = ${id} AND to_status = 'processing'`,
      ),
    ).toBe(1)
  })
})

describe('what a move leaves behind', () => {
  test('history: placement first, every change once, oldest first, with actor and note', async () => {
    const id = await orderIn('confirmed')
    await move(id, { status: 'processing', note: 'picked by Ada' })
    await move(id, { status: 'shipped', ...shipment })
    await cancel(id, admin.token) // refused: shipped
    await move(id, { status: 'delivered' })
    const history = await call('GET', `/api/orders/${id}/history`, { token: owner.token })
    expect(history.status).toBe(200)
    expect(history.body.data.map((e: Record<string, unknown>) => ({ ...e, created_at: typeof e.created_at }))).toEqual([
      {
        from_status: null,
        to_status: 'pending',
        actor: { id: owner.user.id, role: 'customer' },
        note: null,
        created_at: 'string',
      },
      { from_status: 'pending', to_status: 'confirmed', actor: null, note: null, created_at: 'string' },
      {
        from_status: 'confirmed',
        to_status: 'processing',
        actor: { id: admin.user.id, role: 'admin' },
        note: 'picked by Ada',
        created_at: 'string',
      },
      {
        from_status: 'processing',
        to_status: 'shipped',
        actor: { id: admin.user.id, role: 'admin' },
        note: null,
        created_at: 'string',
      },
      {
        from_status: 'shipped',
        to_status: 'delivered',
        actor: { id: admin.user.id, role: 'admin' },
        note: null,
        created_at: 'string',
      },
    ])
  })

  test('each move: one audit job and one event; shipped and delivered: one notification, sent once on retry', async () => {
    const id = await orderIn('delivered')
    const audits = await sql`
      SELECT payload->>'action' AS action FROM ${outboxItems}
      WHERE queue = 'audit' AND payload->>'entity' = 'order' AND (payload->>'entityId')::int = ${id} ORDER BY id`
    expect(audits.map((row) => row.action)).toEqual([
      'order.placed',
      'order.processing',
      'order.shipped',
      'order.delivered',
    ])
    // The worker audits its own confirmation directly, in the confirmation's transaction.
    expect(
      await countWhere(
        sql`SELECT count(*)::int AS count FROM audit_logs WHERE action = 'order.confirmed' AND entity_id = ${id} AND actor_id IS NULL`,
      ),
    ).toBe(1)
    const events = await sql`SELECT type FROM events WHERE order_id = ${id} ORDER BY id`
    expect(events.map((row) => row.type)).toEqual([
      'order.placed',
      'order.confirmed',
      'order.processing',
      'order.shipped',
      'order.delivered',
    ])
    const jobs =
      await sql`SELECT payload FROM outbox WHERE queue = 'order-notification' AND (payload->>'orderId')::int = ${id} ORDER BY id`
    expect(jobs.map((row) => row.payload)).toEqual([
      { orderId: id, kind: 'shipped' },
      { orderId: id, kind: 'delivered' },
    ])

    const mailer = new CountingMailer()
    for (const { payload } of [...jobs, ...jobs]) await notifyOrder(payload, mailer)
    expect(mailer.sent.map((message) => message.subject)).toEqual([
      `Your order #${id} has shipped`,
      `Your order #${id} has been delivered`,
    ])
    expect(mailer.sent[0]!.text).toContain('DHL')
    expect(await countWhere(sql`SELECT count(*)::int AS count FROM notifications WHERE order_id = ${id}`)).toBe(3)
  })

  test('a cancellation records its move and is audited with the restock', async () => {
    const id = await orderIn('confirmed')
    await cancel(id, owner.token)
    const [audit] = await sql`
      SELECT payload FROM ${outboxItems} WHERE queue = 'audit' AND payload->>'action' = 'order.cancelled' AND (payload->>'entityId')::int = ${id}`
    expect(audit!.payload).toMatchObject({
      actorId: owner.user.id,
      details: { from: 'confirmed', byRole: 'customer', restocked: [{ productId, quantity: 2 }] },
    })
    // The event's data is the order as GET /api/orders/:id shows it right after the change.
    const [event] = await sql`SELECT payload FROM events WHERE order_id = ${id} AND type = 'order.cancelled'`
    const shown = await call('GET', `/api/orders/${id}`, { token: owner.token })
    expect(shown.body.status).toBe('cancelled')
    expect(event!.payload).toEqual(shown.body)
  })
})

test('a shipment is stored without the whitespace around its carrier and tracking number', async () => {
  const id = await orderIn('processing')
  const reply = await move(id, { status: 'shipped', carrier: '  DHL ', tracking_number: ' JD0003 ' })
  expect(reply.status).toBe(200)
  expect(reply.body.shipment).toMatchObject({ carrier: 'DHL', tracking_number: 'JD0003' })
})

describe('bad input → 400, nothing changed', () => {
  const cases: [string, Record<string, unknown>][] = [
    ['a status the endpoint does not set', { status: 'cancelled' }],
    ['an unknown status', { status: 'lost' }],
    ['shipped without a carrier', { status: 'shipped', tracking_number: 'X1' }],
    ['shipped without a tracking number', { status: 'shipped', carrier: 'DHL' }],
    ['an empty carrier', { status: 'shipped', carrier: '', tracking_number: 'X1' }],
    ['a blank carrier and tracking number', { status: 'shipped', carrier: '   ', tracking_number: ' ' }],
    ['a blank tracking number', { status: 'shipped', carrier: 'DHL', tracking_number: '\t ' }],
    ['a carrier over 100 characters', { status: 'shipped', carrier: 'c'.repeat(101), tracking_number: 'X1' }],
    ['a note over 500 characters', { status: 'processing', note: 'n'.repeat(501) }],
    ['no status', {}],
  ]
  for (const [name, body] of cases)
    test(name, async () => {
      const id = await orderIn(name.startsWith('shipped') || /carrier|tracking/.test(name) ? 'processing' : 'confirmed')
      const [before] = await sql`SELECT status, updated_at FROM orders WHERE id = ${id}`
      expectError(await move(id, body), 400)
      const [after] = await sql`SELECT status, updated_at FROM orders WHERE id = ${id}`
      expect(after).toEqual(before!)
    })
})
