import type { Fragment } from 'postgres'
import { sql } from '../../db/client'
import { type Cte, cte, literal } from '../../db/cte'
import type { Change } from '../../outbox/events'
import { eventRows, outboxRows } from '../../outbox/rows'

// product.low_stock: written by the change that takes a product's inventory from above its
// threshold to at or below it, in that change's own transaction. Concurrent changes of one row
// are serialised by its lock, each seeing the one before, so exactly one of them crosses; it can
// cross again only after inventory has risen above the threshold. Cancels and restocks only add
// units, so they never cross.

type Stocked = { inventory: number; lowStockThreshold: number | null }

/** The rule, for a change made in application code (an admin's PUT). */
export const crossedLowStock = (before: number, after: Stocked) =>
  after.lowStockThreshold !== null && before > after.lowStockThreshold && after.inventory <= after.lowStockThreshold

export const lowStockDetails = (product: Stocked) => ({
  inventory: product.inventory,
  threshold: product.lowStockThreshold,
})

// The rule in SQL, for the statements that take stock (the order writer), so that an order never
// pays a second query for it. The stock step is named `taken` and returns each product row as it
// is now (`product`) and the units taken (`quantity`).

/** The step naming the products this statement took across their threshold. */
export const lowStockCrossings = (): Cte =>
  cte(
    'low_stock',
    sql`SELECT t.product FROM taken t
    WHERE (t.product).low_stock_threshold IS NOT NULL
      AND (t.product).inventory <= (t.product).low_stock_threshold
      AND (t.product).inventory + t.quantity > (t.product).low_stock_threshold`,
  )

/** A product.low_stock event per crossing. */
export const lowStockEvents = (trace: Fragment | string | null) =>
  eventRows('product.low_stock', {
    orderId: sql`NULL`,
    data: sql`product_document(product)`,
    trace,
    from: sql`low_stock`,
  })

/** An audit job per crossing (no actor: the orders did it). */
export const lowStockAudits = (traces: Fragment | string | null) =>
  outboxRows('audit', {
    payload: sql`jsonb_build_object('actorId', NULL, 'action', ${literal('product.low_stock' satisfies Change)}::text,
      'entity', 'product', 'entityId', (product).id, 'details', jsonb_build_object(
        'inventory', (product).inventory, 'threshold', (product).low_stock_threshold))`,
    traces,
    from: sql`low_stock`,
  })
