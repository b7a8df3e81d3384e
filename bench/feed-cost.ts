// make bench's change-feed cost (BENCH_ONLY=feed runs it alone): what the order path pays for the
// catalogue's change feed, the statement-level triggers that write product_changes. Orders end to
// end on the hot product and on many products, and the hot product's order statement alone, with
// the triggers on and off, alternated in one sitting (on off off on, twice), so that a drift over
// the sitting weighs on both alike.
import type postgres from 'postgres'
import { mean } from './means'

const FEED_TRIGGERS = ['products_changes_inserted', 'products_changes_updated', 'products_changes_deleted']

type OrderRate = { placedPerSecond: number; p99: number }
export type FeedCostRow = { scenario: string; on: number[]; off: number[]; ratio: number }

type Options = {
  monitor: postgres.Sql
  /** Scenario name → one end-to-end run of it. */
  scenarios: Record<string, () => Promise<OrderRate>>
}

async function setFeed(monitor: postgres.Sql, on: boolean) {
  for (const trigger of FEED_TRIGGERS)
    await monitor.unsafe(`ALTER TABLE products ${on ? 'ENABLE' : 'DISABLE'} TRIGGER ${trigger}`)
}

export async function measureFeedCost({ monitor, scenarios }: Options): Promise<FeedCostRow[]> {
  const rows: FeedCostRow[] = []
  try {
    for (const [scenario, run] of Object.entries(scenarios)) {
      const rates = { on: [] as number[], off: [] as number[] }
      for (const on of [true, false, false, true, true, false, false, true]) {
        await setFeed(monitor, on)
        rates[on ? 'on' : 'off'].push((await run()).placedPerSecond)
      }
      rows.push({ scenario, ...rates, ratio: mean(rates.on) / mean(rates.off) })
    }
  } finally {
    await setFeed(monitor, true)
  }
  return rows
}
