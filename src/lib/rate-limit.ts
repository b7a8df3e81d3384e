import { Elysia } from 'elysia'
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible'
import { config } from '../config'
import { redis, whenRedisReady } from './redis'
import { clientAddress } from './client-address'
import { HttpError } from './errors'

export class TooManyRequests extends HttpError {
  constructor(readonly retryAfterSeconds: number) {
    super(429, `Too many attempts, try again in ${retryAfterSeconds} s`)
  }
}

let limiter: RateLimiterRedis | undefined

/**
 * Counted in Redis, so the limit holds across API replicas. While Redis is down an in-memory
 * limiter of the same size stands in, per process, rather than letting every attempt through.
 */
function authLimiter() {
  limiter ??= new RateLimiterRedis({
    storeClient: redis(),
    keyPrefix: `${config.QUEUE_PREFIX}:rate-limit:auth`,
    points: config.RATE_LIMIT_AUTH_MAX,
    duration: config.RATE_LIMIT_AUTH_WINDOW_SECONDS,
    insuranceLimiter: new RateLimiterMemory({
      points: config.RATE_LIMIT_AUTH_MAX,
      duration: config.RATE_LIMIT_AUTH_WINDOW_SECONDS,
    }),
  })
  return limiter
}

/**
 * Counts one attempt of `bucket` from `address`; over the limit throws TooManyRequests.
 * Login, register and the dashboard's password check count here.
 */
export async function countAttempt(bucket: string, address: string) {
  try {
    // A connection still opening would send the count to the per-process stand-in instead.
    await whenRedisReady(500)
    await authLimiter().consume(`${bucket}:${address}`)
  } catch (rejection) {
    if (rejection instanceof RateLimiterRes)
      throw new TooManyRequests(Math.max(1, Math.ceil(rejection.msBeforeNext / 1000)))
    throw rejection
  }
}

/** `rateLimit: 'login'` counts a route's attempts per client address; over the limit → 429 with Retry-After. */
export const rateLimit = new Elysia({ name: 'rate-limit' }).macro({
  rateLimit: (bucket: string) => ({
    // After validation: only well-formed attempts (the ones that could guess a password or
    // create an account) are counted; malformed ones are refused with 400 anyway.
    beforeHandle: ({ request, server }) => countAttempt(bucket, clientAddress(request, server)),
  }),
})
