import { Elysia, ValidationError } from 'elysia'
import postgres from 'postgres'
import { Busy, HttpError } from './errors'
import { logger } from './logger'
import { TooManyRequests } from './rate-limit'

const DATABASE_UNAVAILABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  '57P01', // admin_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
])

type Failure = {
  status: number
  error: string
  details?: { path: string; message: string }[]
  extra?: Record<string, unknown>
}

const truncate = (text: string, max = 200) => (text.length > max ? `${text.slice(0, max)}…` : text)

function describeValidation(error: ValidationError): Failure {
  const details = error.all.slice(0, 10).map((issue) => {
    const path = 'path' in issue && issue.path ? issue.path : '/'
    const message = 'message' in issue ? String(issue.message) : 'is invalid'
    return { path, message: truncate(message) }
  })
  const first = details[0]
  const where = error.type === 'params' ? 'path parameter' : error.type
  const error_ = first
    ? `Invalid ${where}: ${first.path === '/' ? '' : `${first.path.slice(1)}: `}${first.message}`
    : `Invalid ${where}`
  return { status: 400, error: error_, details }
}

/** Drizzle wraps driver errors (DrizzleQueryError); the Postgres error is then its cause. */
const driverError = (error: unknown) =>
  !(error instanceof postgres.PostgresError) && error instanceof Error && error.cause instanceof postgres.PostgresError
    ? error.cause
    : error

/** The Postgres (or connection) error code of a failed query, through Drizzle's wrapper. */
export const postgresErrorCode = (error: unknown) => (driverError(error) as { code?: string } | null)?.code

/** Maps every failure to the contract's status code and a `{"error": ...}` body. */
export function describeFailure(code: string | number, error: unknown): Failure {
  if (error instanceof HttpError) return { status: error.status, error: error.message, extra: error.extra }
  // Elysia wraps what a parse hook throws (e.g. the body-size 413) in its own ParseError.
  if (code === 'PARSE' && error instanceof Error && error.cause instanceof HttpError)
    return { status: error.cause.status, error: error.cause.message }
  if (error instanceof ValidationError) return describeValidation(error)
  switch (code) {
    case 'NOT_FOUND':
      return { status: 404, error: 'Not found' }
    case 'PARSE':
      return { status: 400, error: 'Malformed request body: expected valid JSON' }
    case 'INVALID_COOKIE_SIGNATURE':
    case 'INVALID_FILE_TYPE':
      return { status: 400, error: 'Invalid request' }
  }
  error = driverError(error)
  const pgCode = (error as { code?: string } | null)?.code
  if (pgCode && DATABASE_UNAVAILABLE.has(pgCode)) return { status: 503, error: 'Database unavailable, try again later' }
  if (error instanceof postgres.PostgresError) {
    if (pgCode === '23505') return { status: 409, error: 'Duplicate value' }
    if (pgCode === '23503') return { status: 409, error: 'The record is referenced by or refers to a missing record' }
    if (pgCode === '23514' || pgCode === '23502') return { status: 400, error: 'Value violates a data rule' }
    if (pgCode?.startsWith('22')) return { status: 400, error: 'Value out of range or malformed' }
    if (pgCode === '40001' || pgCode === '40P01') return { status: 503, error: 'Too much contention, try again' }
  }
  return { status: 500, error: 'Internal server error' }
}

export const errorHandler = new Elysia({ name: 'error-handler' }).onError(
  { as: 'global' },
  ({ code, error, set, request }) => {
    const failure = describeFailure(code, error)
    if (error instanceof TooManyRequests || error instanceof Busy)
      set.headers['retry-after'] = String(error.retryAfterSeconds)
    // Load shed on purpose (Busy) is counted in the request metrics, not logged line by line.
    if (failure.status >= 500 && !(error instanceof Busy))
      logger.error({ err: error, method: request.method, url: request.url }, 'request failed')
    set.status = failure.status
    set.headers['content-type'] = 'application/json; charset=utf-8'
    if (failure.details) return { error: failure.error, details: failure.details }
    return failure.extra ? { error: failure.error, ...failure.extra } : { error: failure.error }
  },
)
