import { Type as t } from '@sinclair/typebox'
import { Elysia } from 'elysia'
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
