import { swagger } from '@elysiajs/swagger'
import { Elysia } from 'elysia'
import { connectionClose } from './lib/connection'
import { errorHandler } from './lib/error-handler'
import { ErrorResponse } from './lib/model'
import { observability } from './lib/observability'
import { normalizeOpenApi } from './lib/openapi'
import { security } from './lib/security'
import { adminRoutes } from './modules/admin'
import { queueDashboard } from './modules/admin/dashboard'
import { authRoutes } from './modules/auth'
import { healthRoutes } from './modules/health'
import { orderRoutes } from './modules/orders'
import { productRoutes } from './modules/products'

export const app = new Elysia()
  .use(errorHandler)
  .use(connectionClose)
  .use(observability)
  .use(security)
  .onAfterHandle({ as: 'global' }, ({ path, response }) =>
    path === '/swagger/json' ? normalizeOpenApi(response as Record<string, unknown>) : undefined,
  )
  .use(
    swagger({
      path: '/swagger',
      provider: 'swagger-ui',
      exclude: ['/swagger', '/swagger/json', /^\/admin\/queues/],
      documentation: {
        info: {
          title: 'Order API',
          version: '1.0.0',
          description: 'Sign-up, products and orders for online shops, with stock taken atomically.',
        },
        tags: [
          { name: 'Auth', description: 'Accounts and bearer tokens' },
          { name: 'Products', description: 'The catalogue' },
          { name: 'Orders', description: 'Placing and reading orders' },
          { name: 'Admin', description: 'Queue operations (the Bull Board dashboard is at /admin/queues)' },
          { name: 'Health', description: 'Liveness and readiness' },
        ],
        components: {
          securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
          schemas: { Error: ErrorResponse as never },
        },
      },
    }),
  )
  .use(healthRoutes)
  .use(authRoutes)
  .use(productRoutes)
  .use(orderRoutes)
  .use(adminRoutes)
  .use(queueDashboard)

export type App = typeof app
