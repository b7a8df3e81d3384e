import { Elysia } from 'elysia'
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible'
import { config } from '../config'
import { redis, whenRedisReady } from './redis'
import { clientAddress } from './client-address'
import { HttpError } from './errors'

export class TooManyRequests extends HttpError {
  constructor(
    readonly retryAfterSeconds: number,
    what = 'attempts',
  ) {
    super(429, `Too many ${what}, try again in ${retryAfterSeconds} s`)
  }
}

/**
 * Counted in Redis, so a limit holds across API replicas. While Redis is down an in-memory
 * limiter of the same size stands in, per process, rather than letting every attempt through.
 */
function sharedLimiter(name: string, points: number, duration: number) {
  let limiter: RateLimiterRedis | undefined
  return () =>
    (limiter ??= new RateLimiterRedis({
      storeClient: redis(),
      keyPrefix: `${config.QUEUE_PREFIX}:rate-limit:${name}`,
      points,
      duration,
      // An address over its limit is refused from memory until its window ends: a flood of
      // refused requests costs no Redis round trips.
      inMemoryBlockOnConsumed: points,
      inMemoryBlockDuration: duration,
      insuranceLimiter: new RateLimiterMemory({ points, duration }),
    }))
}

const authLimiter = sharedLimiter('auth', config.RATE_LIMIT_AUTH_MAX, config.RATE_LIMIT_AUTH_WINDOW_SECONDS)
const searchLimiter = sharedLimiter('search', config.RATE_LIMIT_SEARCH_MAX, config.RATE_LIMIT_SEARCH_WINDOW_SECONDS)

async function consume(limiter: RateLimiterRedis, key: string, what: string) {
  try {
    // A connection still opening would send the count to the per-process stand-in instead.
    await whenRedisReady(500)
    await limiter.consume(key)
  } catch (rejection) {
    if (rejection instanceof RateLimiterRes)
      throw new TooManyRequests(Math.max(1, Math.ceil(rejection.msBeforeNext / 1000)), what)
    throw rejection
  }
}

/**
 * Counts one attempt of `bucket` from `address`; over the limit throws TooManyRequests.
 * Login, register and the dashboard's password check count here.
 */
export const countAttempt = (bucket: string, address: string) =>
  consume(authLimiter(), `${bucket}:${address}`, 'attempts')

/** Counts a catalogue read that no cached answer could serve (each costs Postgres a query). */
export const countUncachedSearch = (address: string) => consume(searchLimiter(), address, 'searches')

/** `rateLimit: 'login'` counts a route's attempts per client address; over the limit → 429 with Retry-After. */
export const rateLimit = new Elysia({ name: 'rate-limit' }).macro({
  rateLimit: (bucket: string) => ({
    // After validation: only well-formed attempts (the ones that could guess a password or
    // create an account) are counted; malformed ones are refused with 400 anyway.
    beforeHandle: ({ request, server }) => countAttempt(bucket, clientAddress(request, server)),
  }),
})
