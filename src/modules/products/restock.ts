import type { Fragment } from 'postgres'
import { sql } from '../../db/client'
import { type Cte, cte } from '../../db/cte'

/**
 * The steps that put units back (a cancelled order, a received return) inside the status
 * change's statement, so that they go back exactly once. `lines` is SQL yielding
 * (product_id, quantity); the products are locked in id order, as the order writer locks them.
 * With `skipDeleted`, a product deleted meanwhile (even by a delete that commits while this waits
 * for its lock) gets nothing back. The last step, `restocked`, returns (product_id, quantity).
 */
export const restockSteps = (lines: Fragment, { skipDeleted }: { skipDeleted: boolean }): Cte[] => {
  const alive = skipDeleted ? sql`AND p.deleted_at IS NULL` : sql``
  return [
    cte('returned_units', sql`SELECT product_id, sum(quantity) AS quantity FROM (${lines}) l GROUP BY product_id`),
    cte(
      'locked',
      sql`SELECT p.id FROM products p JOIN returned_units u ON u.product_id = p.id
        WHERE true ${alive}
        ORDER BY p.id
        FOR UPDATE OF p`,
    ),
    cte(
      'restocked',
      sql`UPDATE products p SET inventory = p.inventory + u.quantity, updated_at = now()
        FROM returned_units u, locked l
        WHERE p.id = u.product_id AND p.id = l.id ${alive}
        RETURNING p.id AS product_id, u.quantity::int AS quantity`,
    ),
  ]
}
