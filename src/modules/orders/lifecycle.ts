import { allowedMovesIn, type Transition } from '../lifecycle/service'
import type { OrderStatus } from './model'

/**
 * The order lifecycle, the one table every status change is checked against: the admin
 * status endpoint, cancellation and the worker's confirmation all take their allowed
 * "from" statuses here, and a refused change lists the moves this table allows.
 */
export const TRANSITIONS: readonly Transition<OrderStatus>[] = [
  { from: 'pending', to: 'confirmed', by: ['worker'] },
  { from: 'pending', to: 'cancelled', by: ['owner', 'admin'] },
  { from: 'confirmed', to: 'cancelled', by: ['owner', 'admin'] },
  { from: 'confirmed', to: 'processing', by: ['admin'] },
  { from: 'processing', to: 'shipped', by: ['admin'] },
  { from: 'processing', to: 'cancelled', by: ['admin'] },
  { from: 'shipped', to: 'delivered', by: ['admin'] },
]

/** Where an admin may move an order that is in `status` now (possibly nowhere). */
export const allowedMoves = (status: OrderStatus, mover: 'owner' | 'admin' | 'worker') =>
  allowedMovesIn(TRANSITIONS, status, mover)
