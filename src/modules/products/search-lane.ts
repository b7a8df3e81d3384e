const RESTS_FOR = 3

type Options = {
  /** How many searches may wait for their turn; past it, `refuse` at once. */
  maxWaiting: number
  /** A search whose turn comes later than this after it asked is not run (its request has given up). */
  patienceMs: number
  /** The error a refused search gets (503 with Retry-After). */
  refuse: () => Error
}

/**
 * Turns for the searches that reach Postgres. A `q` of one or two characters cannot use the
 * trigram indexes and scans the table, so a flood of them from many addresses could take all of
 * Postgres's CPU (and, on a shared machine, the API's). Searches read one at a time per API
 * process (on a connection of their own, db/client.ts), and after each the lane rests three
 * times as long as that search took: whatever a flood sends, they keep at most a quarter of one
 * Postgres core busy per process. An indexed search takes about a millisecond, so the lane still
 * serves hundreds a second; the cached answers it fills are not bounded by it.
 */
export function searchLane({ maxWaiting, patienceMs, refuse }: Options) {
  let waiting = 0
  let previous: Promise<unknown> = Promise.resolve()
  return {
    full: () => waiting >= maxWaiting,
    take<T>(search: () => Promise<T>): Promise<T> {
      if (waiting >= maxWaiting) return Promise.reject(refuse())
      waiting++
      const askedAt = performance.now()
      let rest: Promise<void> = Promise.resolve()
      const turn = previous.then(async () => {
        waiting--
        if (performance.now() - askedAt > patienceMs) throw refuse()
        const began = performance.now()
        try {
          return await search()
        } finally {
          rest = Bun.sleep(RESTS_FOR * (performance.now() - began))
        }
      })
      previous = turn.then(
        () => rest,
        () => rest,
      )
      return turn
    },
  }
}
