import { Elysia } from 'elysia'
import { errorResponses, IdParams, pageOf, pagination } from '../../lib/model'
import { authGuard } from '../auth/guard'
import { AllOrdersQuery, CreateOrderBody, MyOrdersQuery, Order } from './model'
import { getOrder, listAllOrders, listOrdersOfUser, placeOrder } from './service'

export const orderRoutes = new Elysia({ prefix: '/api/orders', detail: { tags: ['Orders'] } })
  .use(authGuard)
  .post(
    '',
    async ({ body, principal, set }) => {
      const order = await placeOrder(principal.id, body)
      set.status = 201
      return order
    },
    {
      auth: 'customer',
      body: CreateOrderBody,
      response: { 201: Order, ...errorResponses(400, 401, 403, 404, 409) },
      detail: {
        summary: 'Place an order (customer)',
        description:
          'Prices come from the database. Unknown or deleted product → 404; inactive product or insufficient inventory → 409. A failed order changes nothing.',
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
  .get('/:id', ({ params, principal }) => getOrder(params.id, principal), {
    auth: true,
    params: IdParams,
    response: { 200: Order, ...errorResponses(400, 401, 404) },
    detail: { summary: 'One order (its owner or an admin)' },
  })
