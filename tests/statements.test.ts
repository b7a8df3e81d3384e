import { describe, expect, test } from 'bun:test'
import { cte, frozen, joined, literal, withSteps } from '../src/db/cte'
import { into } from '../src/db/names'
import { orders } from '../src/db/schema'
import { sql } from './helpers'

// The helpers that compose statements from steps (db/cte.ts, db/names.ts), run against Postgres.

describe('statements from steps', () => {
  test('withSteps joins named steps, leaving out false ones, with their values bound', async () => {
    const rows = await sql`${withSteps(
      [
        cte('a', sql`SELECT ${2}::int AS x`),
        false,
        cte('b', sql`SELECT x * ${21}::int AS y FROM a`),
      ],
      sql`SELECT y FROM b`,
    )}`
    expect([...rows]).toEqual([{ y: 42 }])
  })

  test('a frozen fragment is the same statement as text, and a fragment with a value cannot be frozen', async () => {
    const steps = joined([sql`SELECT 1 AS one`, sql`SELECT 2`], 'UNION ALL')
    expect([...(await sql`${frozen(steps)}`)]).toEqual([{ one: 1 }, { one: 2 }])
    expect(() => frozen(sql`SELECT ${1}::int`)).toThrow(/cannot be frozen/)
  })

  test('a literal is quoted, so a constant with a quote stays one string', async () => {
    const [row] = await sql`SELECT ${frozen(sql`${literal("it's")}::text`)} AS text`
    expect(row).toEqual({ text: "it's" })
  })

  test('into names the table and columns from the schema', async () => {
    const target = frozen(into(orders, ['userId', 'totalCents']))
    // A statement that would fail on a wrong name: the columns exist, in this order.
    const [plan] = await sql`EXPLAIN INSERT INTO ${target} VALUES (1, 2)`
    expect(Object.values(plan!)[0]).toContain('Insert on orders')
  })
})
