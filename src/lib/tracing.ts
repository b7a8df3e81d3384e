import {
  type Attributes,
  type Context,
  context,
  type Link,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api'
import { BullMQOtel } from 'bullmq-otel'
import type { AnyElysia } from 'elysia'
import { config } from '../config'

// OpenTelemetry traces, configured only by the standard OTEL_* environment (the SDK reads it:
// OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_SERVICE_NAME,
// OTEL_TRACES_SAMPLER and _ARG). With no endpoint nothing is started, exported or even built: the
// API's calls below are no-ops then.

/** A W3C trace context as carried between processes: `traceparent` (and `tracestate`). */
export type TraceCarrier = Record<string, string>

export const tracingEnabled = Boolean(config.OTEL_EXPORTER_OTLP_ENDPOINT || config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)

// The SDK and the HTTP plugin weigh megabytes: loaded only when traces go somewhere.
const [sdkModule, httpPlugin] = tracingEnabled
  ? await Promise.all([import('@opentelemetry/sdk-node'), import('@elysia/opentelemetry')])
  : []

let sdk: InstanceType<NonNullable<typeof sdkModule>['NodeSDK']> | undefined
let serviceName = 'order-api'

/** Starts exporting this process's spans (once), named OTEL_SERVICE_NAME or `defaultName`. */
export function startTracing(defaultName: string) {
  if (!sdkModule || sdk) return
  serviceName = config.OTEL_SERVICE_NAME ?? defaultName
  sdk = new sdkModule.NodeSDK({ serviceName, instrumentations: [] })
  sdk.start()
}

/** Sends what is still buffered (on shutdown). */
export async function stopTracing() {
  await sdk?.shutdown().catch(() => {})
  sdk = undefined
}

export const tracer = () => trace.getTracer(serviceName)

/**
 * HTTP server spans for the API (@elysia/opentelemetry), added to `app` only when tracing is on:
 * untraced, the app is handed back as it is (even an empty plugin in front of every route was
 * measured at 15 % of the hot order rate).
 */
export function httpTracing<App extends AnyElysia>(app: App): App {
  if (!httpPlugin) return app
  startTracing('order-api')
  return app.use(httpPlugin.opentelemetry({ serviceName })) as unknown as App
}

/** BullMQ's own spans (bullmq-otel) for queues and workers, carrying the context in each job. */
export const bullTelemetry = () => (tracingEnabled ? { telemetry: new BullMQOtel({ tracerName: 'bullmq' }) } : {})

/** The active trace context, to store beside work done later elsewhere (an outbox row); null untraced. */
export function currentTraceCarrier(): TraceCarrier | null {
  if (!tracingEnabled || !trace.getSpan(context.active())) return null
  const carrier: TraceCarrier = {}
  propagation.inject(context.active(), carrier)
  return carrier.traceparent ? carrier : null
}

const contextOf = (carrier: TraceCarrier) => propagation.extract(ROOT_CONTEXT, carrier)

/**
 * A producer span for work that carries the contexts it was written in (outbox rows): the child
 * of the first, linked to the others (a job carries a batch of orders, each its own request's),
 * so that each request's trace goes on. Returns the span and the context to hand on with the job.
 */
export function startHandOver(name: string, carriers: TraceCarrier[], attributes: Record<string, string | number>) {
  if (!tracingEnabled || !carriers.length) return undefined
  const [first, ...rest] = carriers.map(contextOf)
  const links: Link[] = rest.flatMap((linked) => {
    const spanContext = trace.getSpanContext(linked)
    return spanContext ? [{ context: spanContext }] : []
  })
  const span = tracer().startSpan(name, { kind: SpanKind.PRODUCER, links, attributes }, first)
  const carrier: TraceCarrier = {}
  propagation.inject(trace.setSpan(first as Context, span), carrier)
  return { span, metadata: JSON.stringify(carrier) }
}

/**
 * Runs an outgoing request in a client span (the child of the active one), handing `run` the
 * headers that carry the span's context to the receiver (W3C `traceparent`). Untraced: no span,
 * no headers.
 */
export async function clientSpan<T>(
  name: string,
  attributes: Attributes,
  run: (headers: TraceCarrier, span?: Span) => Promise<T>,
): Promise<T> {
  if (!tracingEnabled) return run({})
  return tracer().startActiveSpan(name, { kind: SpanKind.CLIENT, attributes }, async (span) => {
    const headers: TraceCarrier = {}
    propagation.inject(context.active(), headers)
    try {
      return await run(headers, span)
    } catch (error) {
      span.recordException(error as Error)
      span.setStatus({ code: SpanStatusCode.ERROR })
      throw error
    } finally {
      span.end()
    }
  })
}
