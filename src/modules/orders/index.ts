import { Elysia } from 'elysia'
import { errorResponses, IdParams, pageOf, pagination } from '../../lib/model'
import { authGuard } from '../auth/guard'
import { AllOrdersQuery, CreateOrderBody, MyOrdersQuery, Order, OrderHeaders } from './model'
import { cancelOrder } from './cancel'
import { placeOrder } from './place'
import { getOrder, listAllOrders, listOrdersOfUser } from './service'

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
    response: { 200: Order, ...errorResponses(400, 401, 404, 409) },
    detail: {
      summary: 'Cancel an order (its owner or an admin)',
      description:
        'Only from `pending` or `confirmed`; its units go back to stock exactly once. Cancelling again → 409.',
    },
  })
  .get('/:id', ({ params, principal }) => getOrder(params.id, principal), {
    auth: true,
    params: IdParams,
    response: { 200: Order, ...errorResponses(400, 401, 404) },
    detail: { summary: 'One order (its owner or an admin)' },
  })
