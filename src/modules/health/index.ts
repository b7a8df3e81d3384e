import { Type as t } from '@sinclair/typebox'
import { Elysia } from 'elysia'
import client from 'prom-client'
import { sql } from '../../db/client'
import { pingRedis } from '../../lib/redis'

const Check = t.Object({ status: t.Union([t.Literal('ok'), t.Literal('error')]), error: t.Optional(t.String()) })

async function checkPostgres() {
  try {
    await sql`SELECT 1`.execute()
    return { status: 'ok' as const }
  } catch {
    return { status: 'error' as const, error: 'Postgres is not answering' }
  }
}

async function checkRedis() {
  return (await pingRedis()) ? { status: 'ok' as const } : { status: 'error' as const, error: 'Redis is not answering' }
}

/** readiness_check_up{check}: what /health/ready answers, for alerting, sampled when Prometheus scrapes. */
export function registerReadinessGauge(registry: client.Registry) {
  new client.Gauge({
    name: 'readiness_check_up',
    help: 'Whether each readiness check (postgres, redis) passes (1) or fails (0), as /health/ready sees it',
    labelNames: ['check'] as const,
    registers: [registry],
    async collect() {
      const [postgres, redis] = await Promise.all([checkPostgres(), checkRedis()])
      for (const [check, result] of Object.entries({ postgres, redis }))
        this.set({ check }, result.status === 'ok' ? 1 : 0)
    },
  })
}

export const healthRoutes = new Elysia({ prefix: '/health', detail: { tags: ['Health'] } })
  .get('', () => ({ status: 'ok' as const }), {
    response: t.Object({ status: t.Literal('ok') }),
    detail: { summary: 'Liveness: the process answers (touches nothing)' },
  })
  .get(
    '/ready',
    async ({ set }) => {
      const [postgres, redis] = await Promise.all([checkPostgres(), checkRedis()])
      const checks = { postgres, redis }
      const ready = Object.values(checks).every((check) => check.status === 'ok')
      if (ready) return { status: 'ok' as const, checks }
      set.status = 503
      const failing = Object.entries(checks)
        .filter(([, check]) => check.status !== 'ok')
        .map(([name]) => name)
      return { status: 'unavailable' as const, error: `Not ready: ${failing.join(', ')} unavailable`, checks }
    },
    {
      response: {
        200: t.Object({ status: t.Literal('ok'), checks: t.Record(t.String(), Check) }),
        503: t.Object({ status: t.Literal('unavailable'), error: t.String(), checks: t.Record(t.String(), Check) }),
      },
      detail: { summary: 'Readiness: Postgres (and Redis) answer' },
    },
  )
