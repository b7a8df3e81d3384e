import { Elysia } from 'elysia'
import { randomUUID } from 'node:crypto'
import { logger } from './logger'
import { httpDuration, httpRequests, registry } from './metrics'
import { mayReadMetrics, metricsRefused } from './metrics-access'

const REQUEST_ID = /^[\w.:-]{1,128}$/
const started = new WeakMap<Request, { at: number; id: string }>()

/**
 * One log line and one metrics sample per request, keyed by a request id that is taken from
 * X-Request-Id when the caller sent a sane one and returned in the response header either way.
 */
export const observability = new Elysia({ name: 'observability' })
  .onRequest(({ request, set }) => {
    const sent = request.headers.get('x-request-id')
    const id = sent && REQUEST_ID.test(sent) ? sent : randomUUID()
    started.set(request, { at: performance.now(), id })
    set.headers['x-request-id'] = id
  })
  .onAfterResponse({ as: 'global' }, (context) => {
    const { request, set, route, path } = context
    const response = (context as { response?: unknown }).response
    const status = response instanceof Response ? response.status : Number(set.status ?? 200)
    const start = started.get(request)
    const seconds = start ? (performance.now() - start.at) / 1000 : 0
    // Unmatched paths share one label, so scanners cannot blow up the series count.
    const template = route || 'unmatched'
    const labels = { method: request.method, route: template, status: String(status) }
    httpRequests.inc(labels)
    httpDuration.observe(labels, seconds)
    if (logger.isLevelEnabled('info'))
      logger.info(
        {
          requestId: start?.id,
          method: request.method,
          route: template,
          path,
          status,
          ms: Math.round(seconds * 10_000) / 10,
        },
        'request',
      )
  })
  .get(
    '/metrics',
    async ({ request, set }) => {
      if (!mayReadMetrics(request.headers.get('authorization'))) return metricsRefused()
      set.headers['content-type'] = registry.contentType
      return registry.metrics()
    },
    // Prometheus text, not JSON: documented in the README rather than in the OpenAPI document.
    { detail: { hide: true } },
  )
