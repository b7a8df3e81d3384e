import { Elysia } from 'elysia'
import { errorResponses, IdParams, pageOf, pagination } from '../../lib/model'
import { authGuard } from '../auth/guard'
import {
  CreateReturnBody,
  ListReturnsQuery,
  ReceiveReturnBody,
  RejectReturnBody,
  Return,
  ReturnConflict,
  ReturnList,
} from './model'
import { listReturns, listReturnsOfOrder, receiveReturn, rejectReturn, requestReturn } from './service'

export const returnRoutes = new Elysia({ detail: { tags: ['Returns'] } })
  .use(authGuard)
  .post(
    '/api/orders/:id/returns',
    ({ body, params, principal, set }) => {
      set.status = 201
      return requestReturn(params.id, body, principal)
    },
    {
      auth: true,
      params: IdParams,
      body: CreateReturnBody,
      parse: 'json',
      response: { 201: Return, ...errorResponses(400, 401, 404, 409) },
      detail: {
        summary: 'Request a return of a delivered order (its owner or an admin)',
        description:
          'Only for a `delivered` order within `RETURN_WINDOW_DAYS` (default 30) of its delivery, else 409. A product that is not a line of the order → 400. ' +
          'For each product, at most what the order delivered minus what its returns that are not `rejected` already hold (else 409), however many requests arrive at once. ' +
          'Refunds are priced from the order: a record for the books, no payment is moved. Anyone but the owner or an admin → 404.',
      },
    },
  )
  .get('/api/orders/:id/returns', ({ params, principal }) => listReturnsOfOrder(params.id, principal), {
    auth: true,
    params: IdParams,
    response: { 200: ReturnList, ...errorResponses(400, 401, 404) },
    detail: { summary: "An order's returns, oldest first (its owner or an admin)" },
  })
  .get('/api/returns', ({ query }) => listReturns(query.status, pagination(query)), {
    auth: 'admin',
    query: ListReturnsQuery,
    response: { 200: pageOf(Return), ...errorResponses(400, 401, 403) },
    detail: { summary: 'All returns, newest first (admin)' },
  })
  .post('/api/returns/:id/receive', ({ body, params, principal }) => receiveReturn(params.id, body, principal), {
    auth: 'admin',
    params: IdParams,
    body: ReceiveReturnBody,
    // Every field is optional, so the body may be left out altogether.
    parse: [({ request }) => (request.body === null ? {} : undefined), 'json'],
    response: { 200: Return, ...errorResponses(400, 401, 403, 404), 409: ReturnConflict },
    detail: {
      summary: 'Receive a requested return (admin)',
      description:
        "With `restock` (default true) each line's units go back to its product's stock exactly once, in the same transaction; a deleted product is not restocked. " +
        'From any status but `requested` → 409; of concurrent receives exactly one succeeds.',
    },
  })
  .post('/api/returns/:id/reject', ({ body, params, principal }) => rejectReturn(params.id, body, principal), {
    auth: 'admin',
    params: IdParams,
    body: RejectReturnBody,
    parse: 'json',
    response: { 200: Return, ...errorResponses(400, 401, 403, 404), 409: ReturnConflict },
    detail: {
      summary: 'Reject a requested return (admin)',
      description: 'With a `note` saying why (1-500 characters). From any status but `requested` → 409.',
    },
  })
