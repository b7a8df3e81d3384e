import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible'
import { config } from '../config'
import { redis, whenRedisReady } from './redis'
import { HttpError } from './errors'

export class TooManyRequests extends HttpError {
  constructor(
    readonly retryAfterSeconds: number,
    what = 'attempts',
  ) {
    super(429, `Too many ${what}, try again in ${retryAfterSeconds} s`)
  }
}

/** A named limit: `consume(key)` counts one attempt, and over the limit throws TooManyRequests. */
export type Limit = { consume(key: string): Promise<void> }

/**
 * A limit of `points` per `duration` seconds for each key, counted in Redis, so that it holds
 * across API replicas. While Redis is down an in-memory limiter of the same size stands in, per
 * process, rather than letting every attempt through. `what` names the attempts in the 429.
 * The features declare their own limits (auth's attempts, the catalogue's uncached searches).
 */
export function sharedLimit(name: string, points: number, duration: number, what: string): Limit {
  let limiter: RateLimiterRedis | undefined
  const shared = () =>
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
  return { consume: (key) => consume(shared(), key, what) }
}

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
