import { openapi } from '@elysia/openapi'
import { Elysia } from 'elysia'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { ErrorResponse } from '../../lib/model'
import { normalizeOpenApi } from './openapi'

export const DOCS_PATH = '/swagger'

// Swagger UI comes from the installed swagger-ui-dist package and is served from this origin:
// the docs work with no route to a CDN, and their policy allows scripts and styles from here only.
const swaggerUiDir = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'))
const ASSETS: Record<string, string> = {
  'swagger-ui-bundle.js': join(swaggerUiDir, 'swagger-ui-bundle.js'),
  'swagger-ui.css': join(swaggerUiDir, 'swagger-ui.css'),
  'favicon-32x32.png': join(swaggerUiDir, 'favicon-32x32.png'),
  'init.js': join(import.meta.dir, 'swagger-init.js'),
}

const DOCS_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ')

const page = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8" />
  <meta name="viewport" content="width=device-width, initial-scale=1" />
  <title>Order API</title>
  <link rel="icon" href="${DOCS_PATH}/assets/favicon-32x32.png" />
  <link rel="stylesheet" href="${DOCS_PATH}/assets/swagger-ui.css" />
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="${DOCS_PATH}/assets/swagger-ui-bundle.js"></script>
  <script src="${DOCS_PATH}/assets/init.js"></script>
</body>
</html>
`

const pageHeaders = { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': DOCS_POLICY }

/** The OpenAPI document at /swagger/json and Swagger UI at /swagger, both from this process. */
export const docsRoutes = new Elysia({ name: 'docs' })
  .onAfterHandle({ as: 'global' }, ({ path, response }) =>
    path === `${DOCS_PATH}/json` ? normalizeOpenApi(response as Record<string, unknown>) : undefined,
  )
  .use(
    openapi({
      path: DOCS_PATH,
      specPath: `${DOCS_PATH}/json`,
      provider: null,
      openapiVersion: '3.1.0',
      exclude: { paths: [DOCS_PATH, `${DOCS_PATH}/json`, /^\/swagger\/assets/, /^\/admin\/queues/] },
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
  // Our own Swagger UI page: the plugin serves none (provider null).
  .get(
    DOCS_PATH,
    ({ set }) => {
      Object.assign(set.headers, pageHeaders)
      return page
    },
    { detail: { hide: true } },
  )
  .get(
    `${DOCS_PATH}/assets/:file`,
    ({ params, set, status }) => {
      const path = ASSETS[params.file]
      if (!path) return status(404, { error: `No such asset: ${params.file}` })
      set.headers['cache-control'] = 'public, max-age=3600'
      set.headers['content-security-policy'] = DOCS_POLICY
      return Bun.file(path)
    },
    { detail: { hide: true } },
  )
