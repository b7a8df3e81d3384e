import type { TransactionSql } from 'postgres'
import { sql } from '../../db/client'
import { into } from '../../db/names'
import { retryOnConflict } from '../../db/retry'
import { idempotencyKeys } from '../../db/schema'
import { conflict, HttpError } from '../../lib/errors'
import type { TraceCarrier } from '../../lib/tracing'
import { productNotFound } from '../products/service'
import type { Order, ShippingAddress } from './model'
import { type OrderToWrite, writeOrders } from './placement'

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

type LockedProduct = { id: number; inventory: number; is_active: boolean }

// Answers stored before orders had a shipment and delivered_at lack them: replayed as null.
type StoredOrder = Omit<Order, 'shipment' | 'delivered_at'> & Partial<Pick<Order, 'shipment' | 'delivered_at'>>
type StoredKey = {
  user_id: number
  key: string
  request_hash: string
  response_status: number
  response_body: StoredOrder
}

export const IDEMPOTENCY_WINDOW_HOURS = 24

const KEY_COLUMNS = into(idempotencyKeys, ['userId', 'key', 'requestHash', 'responseStatus', 'responseBody'])

/** A request as the writer takes it. */
export const toWrite = (request: OrderRequest): OrderToWrite => ({
  userId: request.userId,
  productIds: request.productIds,
  quantities: request.quantities,
  shippingAddress: request.shippingAddress ?? null,
  traceContext: request.traceContext ?? null,
  idempotencyKey: request.idempotencyKey,
})

const keyReused = () => new HttpError(422, 'This Idempotency-Key was already used with a different request body')
const keyOf = (request: OrderRequest) => `${request.userId}\u0000${request.idempotencyKey}`

/**
 * Places a batch of orders in one transaction, as if one after the other in arrival order:
 * each order is all or nothing on its own, stock goes to the earlier orders first, and an
 * order that cannot be served (404/409) leaves its neighbours alone.
 *
 * Inside the transaction: claim the Idempotency-Keys (only when some order has one), lock the
 * batch's products in id order and allocate, then the order writer's one statement for the
 * orders that fit (placement.ts). Locks are taken in one global order (keys sorted, then products by id), so
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
  // Row locks in ascending id order, held to the end of the transaction: the allocation below
  // and the writer's statement see the same rows. Inventory (bigint) as a double: exact far
  // beyond any stock, and a number in JavaScript. The orders' ids are drawn in the same round
  // trip, so the writer's statement, which runs under the locks, need not draw them.
  const [locked, reserved] = await Promise.all([
    tx<LockedProduct[]>`
    SELECT id, inventory::float8 AS inventory, is_active
    FROM products WHERE id = ANY(${productIds}::int[]) AND deleted_at IS NULL
    ORDER BY id FOR UPDATE`,
    tx<{ id: number }[]>`
    SELECT nextval(pg_get_serial_sequence('orders', 'id'))::int AS id FROM generate_series(1, ${toPlace.length})`,
  ])
  const products = new Map(locked.map((product) => [product.id, product]))

  // Allocation in arrival order, against the locked rows.
  const placed: number[] = []
  for (const index of toPlace) {
    const request = requests[index]!
    const refusal = refuse(request, products)
    if (refusal) {
      outcomes[index] = refusal
      continue
    }
    for (const [line, productId] of request.productIds.entries())
      products.get(productId)!.inventory -= request.quantities[line]!
    placed.push(index)
  }

  // Keys of refused orders are released, so a retry with the same key is a new attempt (as when
  // a lone order fails).
  const released = keyed
    .filter((index) => outcomes[index]?.kind === 'rejected')
    .map((index) => ({ userId: requests[index]!.userId, key: requests[index]!.idempotencyKey! }))
  if (placed.length || released.length) {
    const orders = await writeOrders(
      tx,
      placed.map((index) => toWrite(requests[index]!)),
      { released, locksHeld: true, ids: placed.map((_, i) => reserved[i]!.id) },
    )
    // The rows are locked and the allocation fits them: a refusal here is a bug, not a shortfall.
    if (!orders) throw new Error('order batch: the writer refused an allocation made under its locks')
    for (const [i, index] of placed.entries()) outcomes[index] = { kind: 'placed', order: orders[i]! }
  }

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
    INSERT INTO ${KEY_COLUMNS}
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
