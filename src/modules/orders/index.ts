import { Elysia } from 'elysia'
import { errorResponses, IdParams, pageOf, pagination } from '../../lib/model'
import { authGuard } from '../auth/guard'
import {
  AllOrdersQuery,
  CreateOrderBody,
  MyOrdersQuery,
  Order,
  OrderHeaders,
  OrderHistory,
  StatusChangeBody,
  TransitionConflict,
} from './model'
import { placeOrder } from './place'
import { getOrder, getOrderHistory, listAllOrders, listOrdersOfUser } from './service'
import { cancelOrder, changeStatus } from './transition'

export const orderRoutes = new Elysia({ prefix: '/api/orders', detail: { tags: ['Orders'] } })
  .use(authGuard)
  .post(
    '',
    async ({ body, headers, principal, set }) => {
      const placed = await placeOrder(principal.id, body, headers['idempotency-key'])
      set.status = placed.status
      if (placed.replayed) set.headers['idempotent-replayed'] = 'true'
      return placed.order
    },
    {
      auth: 'customer',
      body: CreateOrderBody,
      parse: 'json',
      headers: OrderHeaders,
      response: { 201: Order, ...errorResponses(400, 401, 403, 404, 409, 422) },
      detail: {
        summary: 'Place an order (customer)',
        description:
          'Prices come from the database. Unknown or deleted product → 404; inactive product or insufficient inventory → 409. A failed order changes nothing. ' +
          'With an `Idempotency-Key`, a repeat of the same body by the same user within 24 h returns the original response (header `Idempotent-Replayed: true`) and takes no stock; the same key with a different body → 422. A duplicate sent while the first is still running waits for it and returns its result.',
      },
    },
  )
  .get('/me', ({ principal, query }) => listOrdersOfUser(principal.id, pagination(query)), {
    auth: true,
    query: MyOrdersQuery,
    response: { 200: pageOf(Order), ...errorResponses(400, 401) },
    detail: { summary: 'My orders, newest first' },
  })
  .get('', ({ query }) => listAllOrders({ status: query.status, userId: query.user_id }, pagination(query)), {
    auth: 'admin',
    query: AllOrdersQuery,
    response: { 200: pageOf(Order), ...errorResponses(400, 401, 403) },
    detail: { summary: 'All orders, newest first (admin)' },
  })
  .post('/:id/cancel', ({ params, principal }) => cancelOrder(params.id, principal), {
    auth: true,
    params: IdParams,
    response: { 200: Order, ...errorResponses(400, 401, 404), 409: TransitionConflict },
    detail: {
      summary: 'Cancel an order (its owner or an admin)',
      description:
        'The owner while `pending` or `confirmed`; an admin also while `processing`; never once shipped. Its units go back to stock exactly once. Otherwise 409 with the current `status` and the statuses an admin can move the order to now (`allowed`).',
    },
  })
  .post('/:id/status', ({ body, params, principal }) => changeStatus(params.id, body, principal), {
    auth: 'admin',
    params: IdParams,
    body: StatusChangeBody,
    parse: 'json',
    response: { 200: Order, ...errorResponses(400, 401, 403, 404), 409: TransitionConflict },
    detail: {
      summary: 'Move an order on: processing, shipped, delivered (admin)',
      description:
        '`confirmed` → `processing` → `shipped` (with `carrier` and `tracking_number`) → `delivered`. A move the lifecycle does not allow from the current status → 409 with the current `status` and the statuses an admin can move the order to now (`allowed`). Of concurrent identical moves exactly one succeeds.',
    },
  })
  .get('/:id/history', ({ params, principal }) => getOrderHistory(params.id, principal), {
    auth: true,
    params: IdParams,
    response: { 200: OrderHistory, ...errorResponses(400, 401, 404) },
    detail: {
      summary: 'Every status of an order, oldest first (its owner or an admin)',
      description: 'The first entry is the placement (`from_status` null); `actor` is null for the worker.',
    },
  })
  .get('/:id', ({ params, principal }) => getOrder(params.id, principal), {
    auth: true,
    params: IdParams,
    response: { 200: Order, ...errorResponses(400, 401, 404) },
    detail: { summary: 'One order (its owner or an admin)' },
  })
