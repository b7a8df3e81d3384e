import { cors } from '@elysia/cors'
import { Elysia } from 'elysia'
import { helmet } from 'elysia-helmet'
import { config } from '../config'
import { HttpError } from './errors'

export const MAX_BODY_BYTES = 100 * 1024
/** No request schema nests deeper than a few levels; validating a deeper tree can take seconds. */
export const MAX_BODY_DEPTH = 32
/**
 * Bun.serve's own cap, never reached: its 413 has no JSON body. Bodies are refused at
 * MAX_BODY_BYTES here, by their Content-Length or while they stream in.
 */
export const SERVER_BODY_CAP_BYTES = 2 ** 40

const tooLarge = () => new HttpError(413, `Request body is larger than ${MAX_BODY_BYTES / 1024} KB`)
const isJson = (contentType: string | null) => /^application\/([\w.+-]*\+)?json\s*(;|$)/i.test(contentType ?? '')

/** The body's text, read no further than MAX_BODY_BYTES: a longer stream is cut off with a 413. */
async function boundedText(request: Request) {
  if (!request.body) return ''
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of request.body) {
    size += chunk.byteLength
    if (size > MAX_BODY_BYTES) throw tooLarge()
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** Whether JSON text nests arrays and objects deeper than `max` (a scan, before any parsing). */
export function nestsDeeperThan(text: string, max: number) {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 92)
        i++ // backslash: skip the escaped character
      else if (c === 34) inString = false
    } else if (c === 34) inString = true
    else if (c === 91 || c === 123) {
      if (++depth > max) return true
    } else if (c === 93 || c === 125) depth--
  }
  return false
}

/**
 * Every request body is JSON, at most 100 KB, nested at most MAX_BODY_DEPTH deep. A declared
 * Content-Length over the limit is refused before the body is read, a streamed one as soon as it
 * passes it (returning nothing hands other bodies to Elysia's parsers).
 */
const requestBody = new Elysia({ name: 'request-body' })
  .onRequest(({ request }) => {
    const length = request.headers.get('content-length')
    if (Number(length ?? 0) > MAX_BODY_BYTES) throw tooLarge()
    const hasBody =
      length !== '0' && (length !== null || request.headers.has('transfer-encoding') || request.body !== null)
    if (hasBody && !isJson(request.headers.get('content-type')))
      throw new HttpError(400, 'Request bodies must be JSON (Content-Type: application/json)')
  })
  .onParse({ as: 'global' }, async ({ request }, contentType) => {
    if (!isJson(contentType)) return
    // A declared length was checked on arrival: Bun reads such a body natively. Only a streamed
    // body is read here piece by piece, and cut off at the limit.
    const text = request.headers.has('content-length') ? await request.text() : await boundedText(request)
    if (nestsDeeperThan(text, MAX_BODY_DEPTH))
      throw new HttpError(400, `Malformed request body: nested deeper than ${MAX_BODY_DEPTH} levels`)
    try {
      return text ? JSON.parse(text) : undefined
    } catch {
      throw new HttpError(400, 'Malformed request body: expected valid JSON')
    }
  })

// The policy for every response but the docs (which set a stricter one of their own): JSON
// needs none of it, and it is what Bull Board (its own assets, inline script and styles) needs.
const helmetOptions: Parameters<typeof helmet>[0] = {
  contentSecurityPolicy: {
    directives: {
      defaultSrc: ["'self'"],
      scriptSrc: ["'self'", "'unsafe-inline'"],
      styleSrc: ["'self'", "'unsafe-inline'", 'https://fonts.googleapis.com'],
      fontSrc: ["'self'", 'data:', 'https://fonts.gstatic.com'],
      imgSrc: ["'self'", 'data:', 'https:'],
      connectSrc: ["'self'"],
      frameAncestors: ["'none'"],
      objectSrc: ["'none'"],
      // Off, so that plain-http local development still loads the docs' own resources.
      upgradeInsecureRequests: null,
    },
  },
  crossOriginEmbedderPolicy: false,
  // elysia-helmet 3.1 writes this one under the Cross-Origin-Resource-Policy name, clobbering that header.
  originAgentCluster: false,
  referrerPolicy: { policy: 'no-referrer' },
  xFrameOptions: { action: 'deny' },
}

/**
 * elysia-helmet decides the header values; it rebuilds them on every request (about 6 % of a
 * product read's CPU in a profile), so they are taken from it once and set as constants.
 */
const helmetHeaders: Record<string, string> = await (async () => {
  const probe = new Elysia().use(helmet(helmetOptions)).get('/', () => '')
  const response = await probe.handle(new Request('http://localhost/'))
  const headers = Object.fromEntries(response.headers)
  delete headers['content-type']
  return headers
})()

const securityHeaders = new Elysia({ name: 'security-headers' }).onRequest(({ set }) => {
  Object.assign(set.headers, helmetHeaders)
})

const allowedOrigins = config.CORS_ORIGINS.split(',')
  .map((origin) => origin.trim())
  .filter(Boolean)

/** CORS only for the origins named in CORS_ORIGINS; none named means same-origin only. */
const crossOrigin = allowedOrigins.length
  ? cors({
      origin: allowedOrigins.includes('*') ? true : allowedOrigins,
      allowedHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key', 'X-Request-Id'],
      exposeHeaders: ['Retry-After', 'Idempotent-Replayed', 'X-Request-Id'],
      maxAge: 600,
    })
  : new Elysia({ name: 'no-cors' })

export const security = new Elysia({ name: 'security' }).use(securityHeaders).use(crossOrigin).use(requestBody)
