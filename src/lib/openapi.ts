/**
 * @elysiajs/swagger emits an OpenAPI 3.0.3 document that does not validate as such (`const` in
 * schemas, responses without a description, array `examples` on parameters) and offers every
 * body as JSON, form data and text. This turns it into a valid OpenAPI 3.1 document (whose
 * schemas are JSON Schema, as TypeBox's are) that says what the API really accepts: JSON.
 *
 * Elysia also writes `additionalProperties: false` into a route's schemas when it first compiles
 * the route (to strip unknown fields), so the document changed with the traffic and, for request
 * bodies, said the opposite of the truth: unknown fields are accepted and ignored. No schema of
 * ours sets it, so every such mark is dropped.
 */

// biome-ignore lint/suspicious/noExplicitAny: the plugin's document is untyped JSON, walked by key
type Json = Record<string, any>

const REASONS: Record<string, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No content',
  400: 'Invalid input',
  401: 'Missing, invalid or expired token, or bad credentials',
  403: 'The role is not allowed',
  404: 'Unknown id or route',
  409: 'Conflict: duplicate, insufficient inventory, inactive product or state',
  413: 'Body larger than 100 KB',
  422: 'Idempotency-Key reused with a different body',
  429: 'Rate limited (see Retry-After)',
  503: 'A dependency is unavailable',
}

const RESPONSE_KEYS = new Set(['description', 'headers', 'content', 'links'])

function onlyJson(content: Json | undefined) {
  if (!content?.['application/json']) return content
  return { 'application/json': content['application/json'] }
}

function dropStrictObjects(schema: unknown) {
  if (!schema || typeof schema !== 'object') return
  if ((schema as Json).additionalProperties === false) delete (schema as Json).additionalProperties
  for (const value of Object.values(schema)) dropStrictObjects(value)
}

export function normalizeOpenApi(document: Json): Json {
  const doc = structuredClone(document)
  doc.openapi = '3.1.0'
  dropStrictObjects(doc.paths)
  dropStrictObjects(doc.components)
  for (const operations of Object.values<Json>(doc.paths ?? {})) {
    for (const operation of Object.values<Json>(operations)) {
      if (typeof operation !== 'object' || !operation) continue
      for (const parameter of operation.parameters ?? []) {
        if (Array.isArray(parameter.examples)) {
          parameter.example = parameter.examples[0]
          delete parameter.examples
        }
      }
      if (operation.requestBody) operation.requestBody.content = onlyJson(operation.requestBody.content)
      for (const [status, response] of Object.entries<Json>(operation.responses ?? {})) {
        response.description ||= REASONS[status] ?? 'Response'
        if (status === '204') delete response.content
        else response.content = onlyJson(response.content)
        for (const key of Object.keys(response)) if (!RESPONSE_KEYS.has(key)) delete response[key]
      }
    }
  }
  return doc
}
