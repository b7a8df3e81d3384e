import { logger } from '../../lib/logger'
import { catalogueChangeFeedUp } from './metrics'
import { productChangesSince } from './queries'

// Which products changed, as Postgres tells it: while products are read, each process asks every
// POLL_EVERY_MS for the products written since its previous look (the change feed) and for the
// catalogue version (productChangesSince). So a cached answer can stay for as long as nothing it shows changes and
// still be less than a second stale, whichever process or script made the change. Polls are
// numbered; a read notes how many had completed when it began, and a later poll vouches for it.

export const POLL_EVERY_MS = 400
/**
 * A poll later than this after the previous one cannot trust the feed to hold all it missed
 * (the worker deletes rows past PRODUCT_CHANGES_RETENTION_MINUTES, 15 by default): it counts
 * every product as changed.
 */
const FEED_TRUSTED_FOR_MS = 5 * 60_000
const REMEMBERED_POLLS = 32

type Changed = ReadonlySet<number> | 'all'

type Options = {
  /** Called with the products a poll found changed; `all` after any write other than stock. */
  onChange: (changed: Changed) => void
  /** Whether to go on polling (no reads lately: stop, until `ensureRunning`). */
  wanted: () => boolean
}

export function watchProductChanges({ onChange, wanted }: Options) {
  let completed = 0
  // The first poll of a run only takes a snapshot: it vouches for reads begun after it, not before.
  let baseline = Number.POSITIVE_INFINITY
  let lastSentAt = 0
  let snapshot: string | undefined
  let version: string | undefined
  const recent = new Map<number, Changed>()
  let running = false
  let stopped = false
  let failing = false

  async function pollOnce() {
    const sentAt = performance.now()
    const missedTooMuch = sentAt - lastSentAt > FEED_TRUSTED_FOR_MS
    const found = await productChangesSince(missedTooMuch ? undefined : snapshot)
    const changed: Changed =
      snapshot === undefined || missedTooMuch || found.version !== version ? 'all' : new Set(found.changed)
    if (snapshot === undefined) baseline = completed + 1
    snapshot = found.snapshot
    version = found.version
    completed += 1
    lastSentAt = sentAt
    recent.set(completed, changed)
    recent.delete(completed - REMEMBERED_POLLS)
    if (completed > baseline && (changed === 'all' || changed.size)) onChange(changed)
  }

  async function run() {
    while (!stopped && wanted()) {
      try {
        await pollOnce()
        if (failing) logger.info('product change polling recovered')
        failing = false
      } catch (error) {
        // Nothing is vouched for meanwhile, so cached answers live FRESH_FOR_MS at most (cache.ts);
        // the next poll that works covers all that was missed.
        if (!failing)
          logger.warn(
            { err: error },
            'product change polling failed: catalogue answers are cached for a second at most',
          )
        failing = true
      }
      catalogueChangeFeedUp.set(failing ? 0 : 1)
      await new Promise((resolve) => setTimeout(resolve, POLL_EVERY_MS).unref())
    }
    running = false
    snapshot = undefined
    baseline = Number.POSITIVE_INFINITY
  }

  return {
    /** Polls completed so far: a read notes this when it begins. */
    completed: () => completed,
    /**
     * Whether a read begun after `pollsBefore` polls has been checked against every change since,
     * by a poll sent less than `withinMs` ago: it is then as current as that poll.
     */
    vouches: (pollsBefore: number, now: number, withinMs: number) =>
      pollsBefore >= baseline && pollsBefore < completed && now - lastSentAt <= withinMs,
    /** Whether any of `ids` may have changed in a poll completed after `pollsBefore` (in doubt, yes). */
    changedAfter(pollsBefore: number, ids: readonly number[]) {
      for (let poll = pollsBefore + 1; poll <= completed; poll++) {
        const changed = recent.get(poll)
        if (!changed || changed === 'all' || ids.some((id) => changed.has(id))) return true
      }
      return false
    },
    ensureRunning() {
      if (running || stopped) return
      running = true
      void run()
    },
    stop() {
      stopped = true
    },
  }
}
