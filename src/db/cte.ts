import type { Fragment } from 'postgres'
import { sql } from './client'

/** A named step of a statement: `name AS (query)`. */
export type Cte = { readonly name: string; readonly query: Fragment; readonly materialized?: boolean }

/**
 * A step. `materialized`: computed once, whatever joins it (Postgres otherwise inlines a step
 * read once, and a nested loop over it recomputes it per outer row).
 */
export const cte = (name: string, query: Fragment, { materialized = false } = {}): Cte => ({ name, query, materialized })

/**
 * `WITH a AS (…), b AS (…) final`: a statement composed from named steps, so that a caller adds
 * steps as values (left out when `undefined` or `false`) instead of splicing text that must end
 * in a comma. Each step's name is an identifier, quoted.
 */
export function withSteps(steps: readonly (Cte | undefined | false)[], final: Fragment): Fragment {
  const present = steps.filter((step): step is Cte => Boolean(step))
  if (!present.length) return final
  const list = present
    .map((step) => sql`${sql(step.name)} AS ${step.materialized ? sql`MATERIALIZED ` : sql``}(${step.query})`)
    .reduce((all, step) => sql`${all}, ${step}`)
  return sql`WITH ${list} ${final}`
}

/** Fragments joined by `separator` (a fixed keyword such as `UNION ALL`, `AND` or `,`). */
export function joined(fragments: readonly Fragment[], separator: 'UNION ALL' | 'AND' | ','): Fragment {
  if (!fragments.length) throw new Error('joined: nothing to join')
  const glue = separator === 'UNION ALL' ? sql` UNION ALL ` : separator === 'AND' ? sql` AND ` : sql`, `
  return fragments.reduce((all, fragment) => sql`${all}${glue}${fragment}`)
}
