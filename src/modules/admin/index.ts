import { Elysia } from 'elysia'
import { errorResponses } from '../../lib/model'
import { authGuard } from '../auth/guard'
import { QueueOverview, QueueParams, RetryResult } from './model'
import { queueOverview, retryFailed } from './service'

export const adminRoutes = new Elysia({ prefix: '/api/admin', detail: { tags: ['Admin'] } })
  .use(authGuard)
  .get('/queues', () => queueOverview(), {
    auth: 'admin',
    response: { 200: QueueOverview, ...errorResponses(401, 403, 503) },
    detail: { summary: 'Job counts per queue and state, and the outbox backlog (admin)' },
  })
  .post('/queues/:queue/retry', ({ params }) => retryFailed(params.queue), {
    auth: 'admin',
    params: QueueParams,
    response: { 200: RetryResult, ...errorResponses(400, 401, 403, 503) },
    detail: { summary: 'Retry every failed job of a queue (admin)' },
  })
