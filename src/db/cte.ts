import type { Fragment } from 'postgres'
import { sql } from './client'

/** A named step of a statement: `name AS (query)`. */
export type Cte = { readonly name: string; readonly query: Fragment }

export const cte = (name: string, query: Fragment): Cte => ({ name, query })

const stepText = (step: Cte) => sql`${sql(step.name)} AS (${step.query})`

/** A fragment that is exactly this text (no values): what a template of one string gives. */
const textFragment = (text: string): Fragment =>
  sql(Object.assign([text], { raw: [text] }) as unknown as TemplateStringsArray)

/**
 * `WITH a AS (…), b AS (…) final`: a statement composed from named steps, so that a caller adds
 * steps as values (left out when `undefined` or `false`) instead of splicing text that must end
 * in a comma. Each step's name is an identifier, quoted.
 */
export function withSteps(steps: readonly (Cte | undefined | false)[], final: Fragment): Fragment {
  const present = steps.filter((step): step is Cte => Boolean(step))
  if (!present.length) return final
  return sql`WITH ${joined(present.map(stepText), ',')} ${final}`
}

/** Fragments joined by `separator` (a fixed keyword such as `UNION ALL`, `AND` or `,`). */
export function joined(fragments: readonly Fragment[], separator: 'UNION ALL' | 'AND' | ','): Fragment {
  if (!fragments.length) throw new Error('joined: nothing to join')
  const glue = separator === 'UNION ALL' ? sql` UNION ALL ` : separator === 'AND' ? sql` AND ` : sql`, `
  return fragments.reduce((all, fragment) => sql`${all}${glue}${fragment}`)
}

type Piece = { strings: readonly string[]; args: readonly unknown[] } | { value: string }

/** The text of a fragment that holds no values (identifiers and nested fragments only). */
function textOf(fragment: Piece): string {
  if ('value' in fragment) return fragment.value
  let text = fragment.strings[0]!
  for (let i = 1; i < fragment.strings.length; i++) {
    const arg = fragment.args[i - 1] as Piece | undefined
    if (!arg || typeof arg !== 'object' || !('value' in arg || 'strings' in arg))
      throw new Error('frozen: a fragment with values cannot be frozen')
    text += textOf(arg) + fragment.strings[i]
  }
  return text
}

/**
 * A fragment without values, made once into one piece of text: a hot statement composed from
 * steps then costs one fragment per use instead of one per step (postgres.js builds every
 * fragment again at each execution).
 */
export const frozen = (fragment: Fragment): Fragment => textFragment(textOf(fragment as unknown as Piece))

/** Steps without values, frozen into `a AS (…), b AS (…)`, to splice between other steps. */
export const frozenSteps = (steps: readonly Cte[]): Fragment => frozen(joined(steps.map(stepText), ','))

/**
 * A constant of the code (an event type, a queue name) written into the statement's text as a
 * quoted SQL literal, not sent as a value: a statement of constants can be frozen. Never for
 * what a request sent.
 */
export const literal = (text: string): Fragment => textFragment(`'${text.replaceAll("'", "''")}'`)
