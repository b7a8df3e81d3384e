import type { TransactionSql } from 'postgres'
import { sql } from '../../db/client'
import { retryOnConflict } from '../../db/retry'
import { type AuditJob, JOB_NAMES, type OrderConfirmationJob, QUEUES } from '../../outbox/definitions'
import { conflict, HttpError } from '../../lib/errors'
import type { TraceCarrier } from '../../lib/tracing'
import { lowStockAudits, lowStockCrossings, lowStockEvents, productNotFound } from '../products/service'
import type { Order, ShippingAddress } from './model'

/** One order of a batch, as it arrived: lines merged and sorted by product id. */
export type OrderRequest = {
  userId: number
  productIds: number[]
  quantities: number[]
  idempotencyKey?: string
  /** SHA-256 of the body as sent, when there is a key. */
  requestHash?: string
  /** The request's trace context (null untraced), carried by its event and the batch's jobs. */
  traceContext?: TraceCarrier | null
  /** Where the order goes, as sent (null: none given). */
  shippingAddress?: ShippingAddress | null
}

export type RejectionReason = 'unknown_product' | 'inactive_product' | 'insufficient_inventory'

/** What became of one order of a batch. */
export type OrderOutcome =
  | { kind: 'placed'; order: Order }
  | { kind: 'rejected'; reason: RejectionReason; error: HttpError }
  | { kind: 'replayed'; status: number; order: Order }
  | { kind: 'key-reused'; error: HttpError }

type LockedProduct = { id: number; name: string; price_cents: number; inventory: number; is_active: boolean }
// Answers stored before orders had a shipment and delivered_at lack them: replayed as null.
/** An order allocated in this batch: what is written. Its document is made by SQL (order_document). */
type Placement = Pick<Order, 'id' | 'user_id' | 'total_cents' | 'items'>

type StoredOrder = Omit<Order, 'shipment' | 'delivered_at'> & Partial<Pick<Order, 'shipment' | 'delivered_at'>>
type StoredKey = {
  user_id: number
  key: string
  request_hash: string
  response_status: number
  response_body: StoredOrder
}

export const IDEMPOTENCY_WINDOW_HOURS = 24

const keyReused = () => new HttpError(422, 'This Idempotency-Key was already used with a different request body')
const keyOf = (request: OrderRequest) => `${request.userId}\u0000${request.idempotencyKey}`

/**
 * Places a batch of orders in one transaction, as if one after the other in arrival order:
 * each order is all or nothing on its own, stock goes to the earlier orders first, and an
 * order that cannot be served (404/409) leaves its neighbours alone.
 *
 * Inside the transaction: claim the Idempotency-Keys (only when some order has one), lock the
 * batch's products in id order and reserve order ids (one round trip), then one statement that
 * writes everything. Locks are taken in one global order (keys sorted, then products by id), so
 * concurrent batches queue behind each other instead of deadlocking.
 */
export async function placeOrderBatch(requests: OrderRequest[]): Promise<OrderOutcome[]> {
  return retryOnConflict(() => sql.begin((tx) => placeInTransaction(tx, requests)))
}

async function placeInTransaction(tx: TransactionSql, requests: OrderRequest[]): Promise<OrderOutcome[]> {
  const outcomes: (OrderOutcome | undefined)[] = Array.from({ length: requests.length }, () => undefined)

  // A key seen twice in one batch: the later request waits for the first one's outcome.
  const leaders = new Map<string, number>()
  const followerOf: (number | undefined)[] = requests.map((request, index) => {
    if (!request.idempotencyKey) return undefined
    const leader = leaders.get(keyOf(request))
    if (leader === undefined) leaders.set(keyOf(request), index)
    return leader
  })

  const keyed = [...leaders.values()].sort((a, b) =>
    keyOf(requests[a]!) < keyOf(requests[b]!) ? -1 : keyOf(requests[a]!) > keyOf(requests[b]!) ? 1 : 0,
  )
  if (keyed.length) {
    for (const { index, stored } of await claimKeys(tx, requests, keyed)) {
      outcomes[index] =
        stored.request_hash === requests[index]!.requestHash
          ? {
              kind: 'replayed',
              status: stored.response_status,
              order: { shipment: null, delivered_at: null, ...stored.response_body },
            }
          : { kind: 'key-reused', error: keyReused() }
    }
  }

  const toPlace = requests.flatMap((_, index) => (outcomes[index] || followerOf[index] !== undefined ? [] : [index]))
  const productIds = [...new Set(toPlace.flatMap((index) => requests[index]!.productIds))].sort((a, b) => a - b)
  // Row locks in ascending id order; ids for every order of the batch reserved in the same round trip.
  const [locked, reservedIds] = await Promise.all([
    // Inventory (bigint) as a double: exact far beyond any stock, and a number in JavaScript.
    tx<LockedProduct[]>`
      SELECT id, name, price_cents, inventory::float8 AS inventory, is_active
      FROM products WHERE id = ANY(${productIds}::int[]) AND deleted_at IS NULL
      ORDER BY id FOR UPDATE`,
    tx<{ id: number }[]>`
      SELECT nextval(pg_get_serial_sequence('orders', 'id'))::int AS id FROM generate_series(1, ${toPlace.length})`,
  ])
  const products = new Map(locked.map((product) => [product.id, product]))

  // Allocation in arrival order, against the locked rows.
  const placed: { index: number; order: Placement }[] = []
  for (const index of toPlace) {
    const request = requests[index]!
    const refusal = refuse(request, products)
    if (refusal) {
      outcomes[index] = refusal
      continue
    }
    const items = request.productIds.map((productId, line) => {
      const product = products.get(productId)!
      const quantity = request.quantities[line]!
      product.inventory -= quantity
      return {
        product_id: productId,
        name: product.name,
        unit_price_cents: product.price_cents,
        quantity,
        line_total_cents: product.price_cents * quantity,
      }
    })
    placed.push({
      index,
      order: {
        id: reservedIds[placed.length]!.id,
        user_id: request.userId,
        total_cents: items.reduce((sum, item) => sum + item.line_total_cents, 0),
        items,
      },
    })
  }

  const documents = await writeBatch(tx, requests, placed, outcomes, keyed)
  for (const { index, order } of placed) outcomes[index] = { kind: 'placed', order: documents.get(order.id)! }

  // Duplicates inside the batch get what their first request got.
  return outcomes.map((outcome, index) => {
    if (outcome) return outcome
    const leader = outcomes[followerOf[index]!]!
    const sameBody = requests[index]!.requestHash === requests[followerOf[index]!]!.requestHash
    if (leader.kind === 'placed')
      return sameBody
        ? { kind: 'replayed', status: 201, order: leader.order }
        : { kind: 'key-reused', error: keyReused() }
    if (leader.kind === 'replayed' && !sameBody) return { kind: 'key-reused', error: keyReused() }
    return leader
  })
}

/**
 * Claims each (user, key) of the batch; a key held by a transaction still running elsewhere is
 * waited for. Returns the keys already used, with what they stored. A key past the window is new.
 */
async function claimKeys(tx: TransactionSql, requests: OrderRequest[], keyed: number[]) {
  const users = keyed.map((index) => requests[index]!.userId)
  const keys = keyed.map((index) => requests[index]!.idempotencyKey!)
  const hashes = keyed.map((index) => requests[index]!.requestHash!)
  const claimed = await tx<{ user_id: number; key: string }[]>`
    INSERT INTO idempotency_keys (user_id, key, request_hash, response_status, response_body)
    SELECT k.user_id, k.key, k.request_hash, 0, 'null'
    FROM unnest(${users}::int[], ${keys}::text[], ${hashes}::text[]) WITH ORDINALITY AS k(user_id, key, request_hash, n)
    ORDER BY k.n
    ON CONFLICT (user_id, key) DO UPDATE
      SET request_hash = EXCLUDED.request_hash, response_status = 0, response_body = 'null', order_id = NULL, created_at = now()
      WHERE idempotency_keys.created_at < now() - make_interval(hours => ${IDEMPOTENCY_WINDOW_HOURS})
    RETURNING user_id, key`
  const claimedKeys = new Set(claimed.map((row) => `${row.user_id}\u0000${row.key}`))
  const used = keyed.filter((index) => !claimedKeys.has(keyOf(requests[index]!)))
  if (!used.length) return []
  const stored = await tx<StoredKey[]>`
    SELECT user_id, key, request_hash, response_status, response_body FROM idempotency_keys
    WHERE (user_id, key) IN (SELECT * FROM unnest(${used.map((i) => requests[i]!.userId)}::int[], ${used.map((i) => requests[i]!.idempotencyKey!)}::text[]))`
  const byKey = new Map(stored.map((row) => [`${row.user_id}\u0000${row.key}`, row]))
  return used.map((index) => ({ index, stored: byKey.get(keyOf(requests[index]!))! }))
}

/** One line of an order as the stock rules see it. */
export type LineCheck = { productId: number; found: boolean; active: boolean; enough: boolean }

/**
 * Why an order cannot be served, from its lines in product id order: an unknown or deleted
 * product (404) before an inactive one before a short one (409), lowest product id first.
 */
export function rejection(lines: LineCheck[]): Extract<OrderOutcome, { kind: 'rejected' }> | undefined {
  const missing = lines.find((line) => !line.found)
  if (missing) return { kind: 'rejected', reason: 'unknown_product', error: productNotFound(missing.productId) }
  const inactive = lines.find((line) => !line.active)
  if (inactive)
    return {
      kind: 'rejected',
      reason: 'inactive_product',
      error: conflict(`Product ${inactive.productId} is not active`),
    }
  const short = lines.find((line) => !line.enough)
  if (short)
    return {
      kind: 'rejected',
      reason: 'insufficient_inventory',
      error: conflict(`Insufficient inventory for product ${short.productId}`),
    }
  return undefined
}

/** The stock rules applied to an order against the rows this batch has locked. */
const refuse = (request: OrderRequest, products: Map<number, LockedProduct>) =>
  rejection(
    request.productIds.map((productId, line) => {
      const product = products.get(productId)
      return {
        productId,
        found: product !== undefined,
        active: product?.is_active ?? false,
        enough: product !== undefined && product.inventory >= request.quantities[line]!,
      }
    }),
  )

/**
 * One statement for the whole batch: take the stock, insert the orders, their lines and the
 * batch's two outbox jobs (one confirmation and one audit job for all its orders), store the keyed orders' responses and release the keys of refused orders (so a
 * retry with the same key is a new attempt, as when a single order fails).
 */
async function writeBatch(
  tx: TransactionSql,
  requests: OrderRequest[],
  placed: { index: number; order: Placement }[],
  outcomes: (OrderOutcome | undefined)[],
  keyed: number[],
): Promise<Map<number, Order>> {
  const taken = new Map<number, number>()
  for (const { order } of placed)
    for (const item of order.items) taken.set(item.product_id, (taken.get(item.product_id) ?? 0) + item.quantity)
  const lines = placed.flatMap(({ order }) => order.items.map((item) => ({ orderId: order.id, ...item })))
  const stored = placed.filter(({ index }) => requests[index]!.idempotencyKey)
  const released = keyed.filter((index) => outcomes[index]?.kind === 'rejected')
  if (!placed.length && !released.length) return new Map()
  const confirmations: OrderConfirmationJob = { orderIds: placed.map(({ order }) => order.id) }
  // The batch's jobs carry every placed request's trace context; each event its own request's.
  const contexts = placed.flatMap(({ index }) => {
    const context = requests[index]!.traceContext
    return context ? [context] : []
  })
  const traced = contexts.length ? JSON.stringify(contexts) : null
  const audits: AuditJob = {
    entries: placed.map(({ order }) => ({
      key: `order-placed:${order.id}`,
      actorId: order.user_id,
      action: 'order.placed',
      entity: 'order',
      entityId: order.id,
      details: {
        totalCents: order.total_cents,
        items: order.items.map((item) => ({ productId: item.product_id, quantity: item.quantity })),
      },
    })),
  }

  const rows = await tx<{ id: number; body: Order }[]>`
    WITH taken AS (
      UPDATE products p SET inventory = p.inventory - t.quantity, updated_at = now()
      FROM unnest(${[...taken.keys()]}::int[], ${[...taken.values()]}::int[]) AS t(id, quantity)
      WHERE p.id = t.id
      RETURNING p AS product, t.quantity
    ),
    ${lowStockCrossings()}
    placed AS (
      INSERT INTO orders (id, user_id, total_cents, shipping_address) OVERRIDING SYSTEM VALUE
      SELECT id, user_id, total_cents, NULLIF(shipping_address, 'null'::jsonb)
      FROM unnest(${placed.map(({ order }) => order.id)}::int[], ${placed.map(({ order }) => order.user_id)}::int[],
        ${placed.map(({ order }) => order.total_cents)}::bigint[],
        ${placed.map(({ index }) => JSON.stringify(requests[index]!.shippingAddress ?? null))}::jsonb[])
        AS o(id, user_id, total_cents, shipping_address)
      RETURNING *
    ),
    history AS (
      INSERT INTO order_status_history (order_id, from_status, to_status, actor_id, actor_role)
      SELECT id, NULL, 'pending', user_id, 'customer' FROM placed
    ),
    lines AS (
      INSERT INTO order_items (order_id, product_id, name, unit_price_cents, quantity, line_total_cents)
      SELECT * FROM unnest(${lines.map((l) => l.orderId)}::int[], ${lines.map((l) => l.product_id)}::int[],
        ${lines.map((l) => l.name)}::text[], ${lines.map((l) => l.unit_price_cents)}::int[],
        ${lines.map((l) => l.quantity)}::int[], ${lines.map((l) => l.line_total_cents)}::bigint[])
      RETURNING *
    ),
    -- Each order as the API shows it (order_document): the response, and its order.placed event's data.
    items AS (
      SELECT order_id, jsonb_agg(order_item_document(l::order_items) ORDER BY l.product_id) AS items
      FROM lines l GROUP BY order_id
    ),
    documents AS (
      SELECT o.id, order_document(o::orders, i.items) AS body FROM placed o JOIN items i ON i.order_id = o.id
    ),
    events_written AS (
      INSERT INTO events (type, order_id, payload, trace_context)
      SELECT 'order.placed', d.id, d.body, NULLIF(t.context, 'null'::jsonb)
      FROM documents d LEFT JOIN unnest(${placed.map(({ order }) => order.id)}::int[], ${placed.map(({ index }) => JSON.stringify(requests[index]!.traceContext ?? null))}::jsonb[]) AS t(order_id, context)
        ON t.order_id = d.id
      UNION ALL
      ${lowStockEvents(traced && JSON.stringify(contexts[0]))}
    ),
    -- The batch's post-order jobs, two outbox rows for all its orders, in the same transaction:
    -- they exist if and only if the orders do.
    jobs AS (
      INSERT INTO outbox (queue, name, payload, trace_context)
      SELECT * FROM (VALUES
        (${QUEUES.orderConfirmation}, ${JOB_NAMES.orderConfirmation}, ${JSON.stringify(confirmations)}::jsonb, ${traced}::jsonb),
        (${QUEUES.audit}, ${JOB_NAMES.audit}, ${JSON.stringify(audits)}::jsonb, ${traced}::jsonb)
      ) AS job(queue, name, payload, trace_context)
      WHERE ${placed.length}::int > 0
      UNION ALL
      ${lowStockAudits(traced)}
    ),
    responses AS (
      UPDATE idempotency_keys k SET response_status = 201, response_body = d.body, order_id = d.id
      FROM unnest(${stored.map(({ index }) => requests[index]!.userId)}::int[], ${stored.map(({ index }) => requests[index]!.idempotencyKey!)}::text[],
        ${stored.map(({ order }) => order.id)}::int[]) AS r(user_id, key, order_id)
        JOIN documents d ON d.id = r.order_id
      WHERE k.user_id = r.user_id AND k.key = r.key
    ),
    released AS (
    DELETE FROM idempotency_keys k
    USING unnest(${released.map((index) => requests[index]!.userId)}::int[], ${released.map((index) => requests[index]!.idempotencyKey!)}::text[]) AS r(user_id, key)
    WHERE k.user_id = r.user_id AND k.key = r.key
    )
    SELECT id, body FROM documents`
  return new Map(rows.map((row) => [row.id, row.body]))
}
