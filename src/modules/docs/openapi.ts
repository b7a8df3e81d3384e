/**
 * @elysia/openapi describes every response it has no description for as "Response for status N",
 * gives bodiless responses (204, 304) a content entry made of their schema, and keeps a
 * parameter's description and example inside its schema, where Swagger UI does not show them.
 * This says what each status means, drops those bodies, and lifts the parameters' out.
 *
 * Elysia also writes `additionalProperties: false` into a route's schemas when it first compiles
 * the route (to strip unknown fields), so the document changed with the traffic and, for request
 * bodies, said the opposite of the truth: unknown fields are accepted and ignored. No schema of
 * ours sets it, so every such mark is dropped.
 *
 * A response that is not JSON (an export's CSV) says its media type with `contentMediaType` on its
 * schema, and is listed under that type instead of the plugin's guess (`text/plain` for a string).
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
const BODILESS = new Set(['204', '304'])
const PLUGIN_DESCRIPTION = /^Response for status \d+$/

function dropStrictObjects(schema: unknown) {
  if (!schema || typeof schema !== 'object') return
  if ((schema as Json).additionalProperties === false) delete (schema as Json).additionalProperties
  for (const value of Object.values(schema)) dropStrictObjects(value)
}

export function normalizeOpenApi(document: Json): Json {
  const doc = structuredClone(document)
  dropStrictObjects(doc.paths)
  dropStrictObjects(doc.components)
  for (const operations of Object.values<Json>(doc.paths ?? {})) {
    for (const operation of Object.values<Json>(operations)) {
      if (typeof operation !== 'object' || !operation) continue
      for (const parameter of operation.parameters ?? []) {
        const schema = parameter.schema ?? {}
        if (schema.description && !parameter.description) {
          parameter.description = schema.description
          delete schema.description
        }
        if (Array.isArray(schema.examples) && parameter.example === undefined) {
          parameter.example = schema.examples[0]
          delete schema.examples
        }
      }
      for (const [status, response] of Object.entries<Json>(operation.responses ?? {})) {
        if (!response.description || PLUGIN_DESCRIPTION.test(response.description))
          response.description = REASONS[status] ?? 'Response'
        if (BODILESS.has(status)) delete response.content
        const typed = Object.values<Json>(response.content ?? {}).find(
          (media) => typeof media.schema?.contentMediaType === 'string',
        )
        if (typed) response.content = { [typed.schema.contentMediaType]: { schema: typed.schema } }
        for (const key of Object.keys(response)) if (!RESPONSE_KEYS.has(key)) delete response[key]
      }
    }
  }
  return doc
}
