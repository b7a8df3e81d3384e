import client from 'prom-client'
import { mayReadMetrics, metricsRefused } from './metrics-access'

/** The worker process's Prometheus registry, served on WORKER_METRICS_PORT. */
export const workerRegistry = new client.Registry()
client.collectDefaultMetrics({ register: workerRegistry })

export const jobsProcessed = new client.Counter({
  name: 'jobs_processed_total',
  help: 'Jobs run by this worker, by queue and outcome (completed, failed)',
  labelNames: ['queue', 'outcome'] as const,
  registers: [workerRegistry],
})

export const jobDuration = new client.Histogram({
  name: 'job_duration_seconds',
  help: 'How long a job took to run, by queue and outcome',
  labelNames: ['queue', 'outcome'] as const,
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
  registers: [workerRegistry],
})

/** A small HTTP server for Prometheus and container health checks. */
export function serveWorkerMetrics(port: number) {
  return Bun.serve({
    port,
    async fetch(request) {
      const { pathname } = new URL(request.url)
      if (pathname === '/metrics') {
        if (!mayReadMetrics(request.headers.get('authorization'))) return metricsRefused()
        return new Response(await workerRegistry.metrics(), { headers: { 'content-type': workerRegistry.contentType } })
      }
      if (pathname === '/health') return Response.json({ status: 'ok' })
      return Response.json({ error: 'Not found' }, { status: 404 })
    },
  })
}
