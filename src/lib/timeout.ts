/**
 * Rejects with `failure` (a message, or the error to throw) when `work` has not settled within
 * `ms`; the timer never outlives the race.
 */
export function withTimeout<T>(work: Promise<T>, ms: number, failure: string | (() => Error)): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(typeof failure === 'string' ? new Error(failure) : failure()), ms)
  })
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer))
}
