import { Elysia } from 'elysia'
import { registerQueueGauges } from './outbox/queue-metrics'
import { closeBroadcasts, startBroadcasts } from './lib/broadcast'
import { connectionClose } from './lib/connection'
import { errorHandler } from './lib/error-handler'
import { registry } from './lib/metrics'
import { observability } from './lib/observability'
import { security } from './lib/security'
import { httpTracing } from './lib/tracing'
import { adminRoutes } from './modules/admin'
import { queueDashboard } from './modules/admin/dashboard'
import { authRoutes } from './modules/auth'
import { followRevocations } from './modules/auth/revocation'
import { docsRoutes } from './modules/docs'
import { exportRoutes } from './modules/exports'
import { healthRoutes, registerReadinessGauge } from './modules/health'
import { orderRoutes } from './modules/orders'
import { productRoutes } from './modules/products'
import { returnRoutes } from './modules/returns'
import { followCatalogueChanges, stopFollowingCatalogueChanges } from './modules/products/cache'
import { webhookRoutes } from './modules/webhooks'
import { registerWebhookGauges } from './modules/webhooks/metrics'

export const app = new Elysia()
  .use(httpTracing)
  .use(errorHandler)
  .use(connectionClose)
  .use(observability)
  .use(security)
  .use(docsRoutes)
  .use(healthRoutes)
  .use(authRoutes)
  .use(productRoutes)
  .use(orderRoutes)
  .use(returnRoutes)
  .use(adminRoutes)
  .use(exportRoutes)
  .use(webhookRoutes)
  .use(queueDashboard)

export type App = typeof app

/**
 * What runs beside the routes: the gauges /metrics samples (queues, readiness, webhook endpoints), and what the caches follow (session
 * revocations and catalogue changes, from Postgres and the other API processes). server.ts starts
 * it once (so do the in-process tests); nothing starts at import.
 */
export function startApp() {
  registerQueueGauges(registry)
  registerReadinessGauge(registry)
  registerWebhookGauges(registry)
  followRevocations()
  followCatalogueChanges()
  startBroadcasts()
}

export async function stopApp() {
  stopFollowingCatalogueChanges()
  await closeBroadcasts()
}
