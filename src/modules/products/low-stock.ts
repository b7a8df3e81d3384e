import { sql } from '../../db/client'
import { JOB_NAMES, QUEUES } from '../../outbox/definitions'

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

// The rule in SQL, for the statements that take stock (single orders and batches), so that an
// order never pays a second query for it. They name their stock update `taken` and return from
// it each product row as it is now (`product`) and the units taken (`quantity`).

/** A CTE (ending in a comma): the products this statement took across their threshold. */
export const lowStockCrossings = () => sql`
  low_stock AS (
    SELECT t.product FROM taken t
    WHERE (t.product).low_stock_threshold IS NOT NULL
      AND (t.product).inventory <= (t.product).low_stock_threshold
      AND (t.product).inventory + t.quantity > (t.product).low_stock_threshold
  ),`

/** Rows for `INSERT INTO events (type, order_id, payload, trace_context)`: one per crossing. */
export const lowStockEvents = (trace: string | null) => sql`
  SELECT 'product.low_stock', NULL::int, product_document(product), ${trace}::jsonb FROM low_stock`

/** Rows for `INSERT INTO outbox (queue, name, payload, trace_context)`: an audit job per crossing (no actor: the orders). */
export const lowStockAudits = (traced: string | null) => sql`
  SELECT ${QUEUES.audit}, ${JOB_NAMES.audit}, jsonb_build_object('actorId', NULL, 'action', 'product.low_stock',
    'entity', 'product', 'entityId', (product).id, 'details', jsonb_build_object(
      'inventory', (product).inventory, 'threshold', (product).low_stock_threshold)), ${traced}::jsonb
  FROM low_stock`
