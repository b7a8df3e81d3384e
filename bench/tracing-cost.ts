// make bench's tracing cost (BENCH_ONLY=tracing runs it alone): hot orders end to end with the
// API and the worker started without OpenTelemetry (as by default) and with it on at 100 %
// sampling, exporting over OTLP/HTTP (protobuf) to a collector stand-in in this process that
// counts what it gets. Alternated (off on on off, twice) so that a drift weighs on both alike.

import { shareOfMeans } from './means'

type OrderRate = { placedPerSecond: number; p99: number }
export type TracingCostRow = { tracing: 'off' | 'on'; placedPerSecond: number; p99: number }

type Options = {
  /** Stops the API and the worker and starts them again with this environment added. */
  restartServices: (env: Record<string, string>) => Promise<void>
  hotOrders: () => Promise<OrderRate>
}

export async function measureTracingCost({ restartServices, hotOrders }: Options) {
  let exports = 0
  let bytes = 0
  const collector = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(request) {
      bytes += (await request.arrayBuffer()).byteLength
      exports++
      return new Response(null, { status: 200 })
    },
  })
  const on = {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collector.port}`,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    OTEL_TRACES_SAMPLER: 'always_on',
  }
  const rows: TracingCostRow[] = []
  try {
    for (const tracing of ['off', 'on', 'on', 'off', 'off', 'on', 'on', 'off'] as const) {
      await restartServices(tracing === 'on' ? on : {})
      rows.push({ tracing, ...(await hotOrders()) })
    }
  } finally {
    await restartServices({})
    collector.stop(true)
  }
  return { rows, exports, bytes }
}

/** The mean rate with tracing on as a share of the mean with it off. */
export const tracingShare = (rows: TracingCostRow[]) =>
  shareOfMeans(
    rows,
    (row) => row.tracing === 'on',
    (row) => row.tracing === 'off',
  )
