/** An error whose message is safe to show to the client, with the HTTP status it maps to. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** More fields for the `{"error": ...}` body (e.g. a 409's current status and allowed moves). */
    readonly extra?: Record<string, unknown>,
  ) {
    super(message)
    this.name = 'HttpError'
  }
}

export const badRequest = (message: string) => new HttpError(400, message)
export const unauthorized = (message = 'Authentication required') => new HttpError(401, message)
export const forbidden = (message = 'You are not allowed to do this') => new HttpError(403, message)
export const notFound = (message = 'Not found') => new HttpError(404, message)
export const conflict = (message: string) => new HttpError(409, message)

/** 503 with Retry-After: the request may succeed in a moment (a dependency is saturated). */
export class Busy extends HttpError {
  constructor(
    message: string,
    readonly retryAfterSeconds = 1,
  ) {
    super(503, message)
  }
}
