import type { OrderStatus } from './model'

/** Who moves an order or a return: its owner (a customer), an admin, or the worker. */
export type Mover = 'owner' | 'admin' | 'worker'

/** One allowed move of a lifecycle (orders', returns'), and who may make it. */
export type Transition<S extends string> = { from: S; to: S; by: readonly Mover[] }

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

/** The statuses from which `mover` may move to `to`, in a lifecycle. */
export const fromStatusesIn = <S extends string>(transitions: readonly Transition<S>[], to: S, mover: Mover): S[] =>
  transitions.filter((t) => t.to === to && t.by.includes(mover)).map((t) => t.from)

/** Where `mover` may move from `status`, in a lifecycle (possibly nowhere). */
export const allowedMovesIn = <S extends string>(transitions: readonly Transition<S>[], status: S, mover: Mover): S[] =>
  transitions.filter((t) => t.from === status && t.by.includes(mover)).map((t) => t.to)

/** Where `mover` may move an order that is in `status` now (possibly nowhere). */
export const allowedMoves = (status: OrderStatus, mover: Mover) => allowedMovesIn(TRANSITIONS, status, mover)
