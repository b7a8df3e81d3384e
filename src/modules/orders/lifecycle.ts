import type { OrderStatus } from './model'

/** Who moves an order: its owner (a customer), an admin, or the worker. */
export type Mover = 'owner' | 'admin' | 'worker'

/**
 * The order lifecycle, the one table every status change is checked against: the admin
 * status endpoint, cancellation and the worker's confirmation all take their allowed
 * "from" statuses here, and a refused change lists the moves this table allows.
 */
export const TRANSITIONS: readonly { from: OrderStatus; to: OrderStatus; by: readonly Mover[] }[] = [
  { from: 'pending', to: 'confirmed', by: ['worker'] },
  { from: 'pending', to: 'cancelled', by: ['owner', 'admin'] },
  { from: 'confirmed', to: 'cancelled', by: ['owner', 'admin'] },
  { from: 'confirmed', to: 'processing', by: ['admin'] },
  { from: 'processing', to: 'shipped', by: ['admin'] },
  { from: 'processing', to: 'cancelled', by: ['admin'] },
  { from: 'shipped', to: 'delivered', by: ['admin'] },
]

/** The statuses from which `mover` may move an order to `to`. */
export const fromStatuses = (to: OrderStatus, mover: Mover): OrderStatus[] =>
  TRANSITIONS.filter((t) => t.to === to && t.by.includes(mover)).map((t) => t.from)

/** Where `mover` may move an order that is in `status` now (possibly nowhere). */
export const allowedMoves = (status: OrderStatus, mover: Mover): OrderStatus[] =>
  TRANSITIONS.filter((t) => t.from === status && t.by.includes(mover)).map((t) => t.to)
