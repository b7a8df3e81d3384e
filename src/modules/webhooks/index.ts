import { Elysia } from 'elysia'
import { errorResponses, IdParams, emptyResponse, pageOf, pagination } from '../../lib/model'
import { badRequest } from '../../lib/errors'
import { authGuard } from '../auth/guard'
import {
  CreatedWebhook,
  CreateWebhookBody,
  DeliveriesQuery,
  Delivery,
  DeliveryAccepted,
  DeliveryParams,
  RotatedSecret,
  UpdateWebhookBody,
  Webhook,
  WebhookList,
} from './model'
import {
  createWebhook,
  deleteWebhook,
  getWebhook,
  listDeliveries,
  listWebhooks,
  retryDelivery,
  rotateSecret,
  sendTestEvent,
  updateWebhook,
} from './service'

const adminErrors = errorResponses(400, 401, 403, 404)

// Elysia's validator turns `"events": "*"` into `["*"]`, and the contract wants a list. The raw
// body is looked at before validation, but refused only after the auth check (so a request
// without a token is still a 401, whatever its body).
const bareEvents = new WeakSet<Request>()
const eventsMustBeAList = {
  transform({ body, request }: { body: unknown; request: Request }) {
    const events = (body as { events?: unknown } | null)?.events
    if (events !== undefined && !Array.isArray(events)) bareEvents.add(request)
  },
  beforeHandle({ request }: { request: Request }) {
    if (bareEvents.has(request)) throw badRequest('events must be a list of event names')
  },
}

export const webhookRoutes = new Elysia({ prefix: '/api/admin/webhooks', detail: { tags: ['Webhooks'] } })
  .use(authGuard)
  .post(
    '',
    async ({ body, set }) => {
      const webhook = await createWebhook(body)
      set.status = 201
      return webhook
    },
    {
      auth: 'admin',
      ...eventsMustBeAList,
      body: CreateWebhookBody,
      parse: 'json',
      response: { 201: CreatedWebhook, ...errorResponses(400, 401, 403) },
      detail: {
        summary: 'Subscribe an endpoint to events (admin); the answer holds its secret, shown only here',
        description:
          'Deliveries follow Standard Webhooks: `webhook-id`, `webhook-timestamp` and `webhook-signature` ' +
          '(`v1,` + base64 HMAC-SHA256 of `<id>.<timestamp>.<body>` keyed with the decoded secret).',
      },
    },
  )
  .get('', () => listWebhooks(), {
    auth: 'admin',
    response: { 200: WebhookList, ...errorResponses(401, 403) },
    detail: { summary: 'List the webhook endpoints (admin)' },
  })
  .get('/:id', ({ params }) => getWebhook(params.id), {
    auth: 'admin',
    params: IdParams,
    response: { 200: Webhook, ...adminErrors },
    detail: { summary: 'Get one webhook endpoint (admin; never its secret)' },
  })
  .patch('/:id', ({ params, body }) => updateWebhook(params.id, body), {
    auth: 'admin',
    params: IdParams,
    ...eventsMustBeAList,
    body: UpdateWebhookBody,
    parse: 'json',
    response: { 200: Webhook, ...adminErrors },
    detail: { summary: 'Change an endpoint’s url, events, description or enabled flag (admin)' },
  })
  .delete(
    '/:id',
    async ({ params, set }) => {
      await deleteWebhook(params.id)
      set.status = 204
    },
    {
      auth: 'admin',
      params: IdParams,
      response: { 204: emptyResponse('Deleted, with its deliveries'), ...adminErrors },
      detail: { summary: 'Delete a webhook endpoint (admin)' },
    },
  )
  .post('/:id/rotate-secret', ({ params }) => rotateSecret(params.id), {
    auth: 'admin',
    params: IdParams,
    response: { 200: RotatedSecret, ...adminErrors },
    detail: {
      summary: 'Replace the signing secret (admin)',
      description: 'For 24 hours deliveries carry signatures with both the new and the previous secret.',
    },
  })
  .post(
    '/:id/test',
    async ({ params, set }) => {
      set.status = 202
      return sendTestEvent(params.id)
    },
    {
      auth: 'admin',
      params: IdParams,
      response: { 202: DeliveryAccepted, ...errorResponses(400, 401, 403, 404, 409) },
      detail: { summary: 'Send a `webhook.test` event to this endpoint alone (admin)' },
    },
  )
  .get(
    '/:id/deliveries',
    ({ params, query }) => listDeliveries(params.id, { ...pagination(query), status: query.status }),
    {
      auth: 'admin',
      params: IdParams,
      query: DeliveriesQuery,
      response: { 200: pageOf(Delivery), ...adminErrors },
      detail: { summary: 'The endpoint’s delivery log, newest first (admin)' },
    },
  )
  .post(
    '/:id/deliveries/:delivery_id/retry',
    async ({ params, set }) => {
      set.status = 202
      return retryDelivery(params.id, params.delivery_id)
    },
    {
      auth: 'admin',
      params: DeliveryParams,
      response: { 202: DeliveryAccepted, ...errorResponses(400, 401, 403, 404, 409) },
      detail: { summary: 'Attempt a delivery again, with the same webhook-id (admin)' },
    },
  )
