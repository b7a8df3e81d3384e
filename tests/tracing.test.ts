import { afterAll, describe, expect, test } from 'bun:test'
import { trace } from '@opentelemetry/api'
import { tracingEnabled } from '../src/lib/tracing'
import { createAdmin, createProduct, freePort, registerCustomer, waitFor } from './helpers'
import { startApi, startWorker, stopServices, untilAnswering } from './processes'
import { webhookReceiver } from './webhook-receiver'

// One order followed through OpenTelemetry: the API's request, the outbox relay, the worker's
// confirmation job and a webhook delivery, as an OTLP/HTTP receiver in this test gets them.

const collector = webhookReceiver().start()
const hooks = webhookReceiver().start()
afterAll(async () => {
  await stopServices()
  collector.stop()
  hooks.stop()
})

type OtlpSpan = {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  links?: { traceId: string; spanId: string }[]
  service: string
}
const KIND = { server: 2, client: 3, producer: 4, consumer: 5 }

/** Every span the collector got as OTLP JSON, with its service's name. */
function receivedSpans(): OtlpSpan[] {
  return collector
    .at('/v1/traces')
    .filter((arrival) => arrival.headers['content-type']?.includes('json'))
    .flatMap((arrival) => JSON.parse(arrival.body).resourceSpans ?? [])
    .flatMap((resource: any) => {
      const service = resource.resource.attributes.find((a: any) => a.key === 'service.name')?.value.stringValue
      return resource.scopeSpans.flatMap((scope: any) => scope.spans.map((span: any) => ({ ...span, service })))
    })
}

const tracingEnv = (protocol: string) => ({
  OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collector.port}`,
  OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
  OTEL_BSP_SCHEDULE_DELAY: '100',
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
})

describe('OpenTelemetry traces', () => {
  test('without an endpoint nothing is started: no tracer provider, nothing exported', () => {
    expect(process.env.OTEL_EXPORTER_OTLP_ENDPOINT).toBeUndefined()
    expect(tracingEnabled).toBe(false)
    const provider = trace.getTracerProvider() as unknown as { getDelegateTracer?: (name: string) => unknown }
    expect(provider.getDelegateTracer?.('check')).toBeUndefined()
  })

  test('one order is one trace: request (API) → outbox relay (API) → confirmation job and webhook delivery (worker)', async () => {
    const prefix = `tracing-${process.pid}-${Date.now()}`
    const workerPort = freePort()
    const env = { ...tracingEnv('http/json'), QUEUE_PREFIX: prefix }
    const api = await startApi(env)
    startWorker({ ...env, WORKER_METRICS_PORT: String(workerPort) })
    await untilAnswering(`http://127.0.0.1:${workerPort}/health`)
    const admin = await createAdmin()
    const path = `/traced-${Date.now()}`
    const hook = await fetch(`${api.base}/api/admin/webhooks`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: hooks.url(path), events: ['order.placed'] }),
    })
    expect(hook.status).toBe(201)
    const product = await createProduct(admin.token, { inventory: 5 })
    const customer = await registerCustomer('traced')
    const placed = await fetch(`${api.base}/api/orders`, {
      method: 'POST',
      headers: { authorization: `Bearer ${customer.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ items: [{ product_id: product.id, quantity: 1 }] }),
    })
    expect(placed.status).toBe(201)
    const order = (await placed.json()) as { id: number }

    const delivery = (await waitFor(() => hooks.at(path)[0], 20_000))!
    expect(JSON.parse(delivery.body).data.id).toBe(order.id)
    const [, traceId, parentOfReceiver] = delivery.headers.traceparent!.split('-')

    const spans = (await waitFor(() => {
      const mine = receivedSpans().filter((span) => span.traceId === traceId)
      // Whole: the last spans are there, and so is every span's parent (the API and the worker
      // export in batches of their own, so a relay span may arrive after the job it started).
      const done =
        mine.some((span) => span.name === 'webhook POST') &&
        mine.some((span) => span.service === 'order-api-worker' && span.name.includes('order-confirmation')) &&
        mine.every((span) => !span.parentSpanId || mine.some((parent) => parent.spanId === span.parentSpanId))
      return done ? mine : undefined
    }, 20_000))!
    const byId = new Map(spans.map((span) => [span.spanId, span]))
    const parentOf = (span: OtlpSpan) => (span.parentSpanId ? byId.get(span.parentSpanId) : undefined)
    const ancestorsOf = (span: OtlpSpan): OtlpSpan[] => {
      const parent = parentOf(span)
      return parent ? [parent, ...ancestorsOf(parent)] : []
    }

    // The request: the API's server span, the root of the trace.
    const request = spans.find((span) => span.kind === KIND.server && span.service === 'order-api')!
    expect(request).toBeDefined()
    expect(request.parentSpanId || undefined).toBeUndefined()
    // The relay hands each job over in a span of its own, within the request's (the child of
    // the span its outbox rows were written in: the route handler's).
    const relays = spans.filter((span) => span.name === 'outbox relay')
    expect(relays.length).toBeGreaterThanOrEqual(2)
    for (const relay of relays) {
      expect(relay).toMatchObject({ service: 'order-api', kind: KIND.producer })
      expect(ancestorsOf(relay)).toContain(request)
    }
    // A relay pass moves other requests' rows too: nothing of it but these spans joins this trace.
    expect(spans.filter((span) => span.name.startsWith('addBulk'))).toEqual([])
    // The worker's confirmation job continues the relay's span.
    const confirmation = spans.find(
      (span) =>
        span.service === 'order-api-worker' && span.kind === KIND.consumer && span.name.includes('order-confirmation'),
    )!
    expect(relays).toContain(parentOf(confirmation)!)
    // The delivery: a job whose parent is a relay span, and the request it sent, whose context
    // the receiver got in `traceparent`.
    const webhook = spans.find((span) => span.name === 'webhook POST')!
    expect(webhook).toMatchObject({ service: 'order-api-worker', kind: KIND.client, spanId: parentOfReceiver })
    const deliveryJob = parentOf(webhook)!
    expect(deliveryJob).toMatchObject({ service: 'order-api-worker', kind: KIND.consumer })
    expect(deliveryJob.name).toContain('webhooks')
    expect(relays).toContain(parentOf(deliveryJob)!)
  }, 60_000)

  test('http/protobuf is exported as protobuf to the same endpoint', async () => {
    const api = await startApi({ ...tracingEnv('http/protobuf'), QUEUE_PREFIX: `tracing-proto-${process.pid}` })
    const before = collector.at('/v1/traces').length
    expect((await fetch(`${api.base}/api/products?page=1`)).status).toBe(200)
    const exported = (await waitFor(
      () =>
        collector
          .at('/v1/traces')
          .slice(before)
          .find((arrival) => arrival.headers['content-type'] === 'application/x-protobuf'),
      20_000,
    ))!
    expect(exported.body.length).toBeGreaterThan(20)
    expect(exported.body).toContain('order-api')
  }, 60_000)
})
