import { logger } from '../lib/logger'

const RETRYABLE = new Set(['40001', '40P01']) // serialization_failure, deadlock_detected
const MAX_ATTEMPTS = 5

/**
 * Runs a transaction again when Postgres aborts it for a deadlock or serialization failure,
 * so that such a failure never reaches a client as a 5xx.
 */
export async function retryOnConflict<T>(work: (attempt: number) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work(attempt)
    } catch (error) {
      const code = (error as { code?: string } | null)?.code ?? ''
      if (!RETRYABLE.has(code) || attempt >= MAX_ATTEMPTS) throw error
      logger.warn({ attempt, code }, 'transaction retried after a deadlock or serialization failure')
      await Bun.sleep(Math.random() * 10 * attempt)
    }
  }
}

export const MAX_TRANSACTION_ATTEMPTS = MAX_ATTEMPTS
