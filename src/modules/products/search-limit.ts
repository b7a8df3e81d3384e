import { config } from '../../config'
import { sharedLimit } from '../../lib/rate-limit'

/** Catalogue reads that no cached answer could serve, per client address: each costs Postgres a query. */
const uncachedSearches = sharedLimit(
  'search',
  config.RATE_LIMIT_SEARCH_MAX,
  config.RATE_LIMIT_SEARCH_WINDOW_SECONDS,
  'searches',
)

/** Counts one uncached catalogue read from `address`; over the limit throws TooManyRequests (429). */
export const countUncachedSearch = (address: string) => uncachedSearches.consume(address)
