import { describe, expect, test } from 'bun:test'
import { readdirSync, readFileSync } from 'node:fs'
import { applyFunctions, functionFiles } from '../src/db/functions'
import { sql } from './helpers'

// The SQL functions have one current definition each: their file in src/db/functions/.

const bodyOf = (text: string) => text.slice(text.indexOf('$$') + 2, text.lastIndexOf('$$'))
const running = async (name: string) =>
  (await sql<{ prosrc: string }[]>`SELECT prosrc FROM pg_proc WHERE proname = ${name}`).map((row) => row.prosrc)

describe('SQL functions', () => {
  test('each file is what the migrated database runs', async () => {
    const files = functionFiles()
    expect(files.length).toBeGreaterThan(0)
    for (const { name, text } of files) {
      expect(text).toContain(`CREATE OR REPLACE FUNCTION ${name}(`)
      expect({ name, bodies: await running(name) }).toEqual({ name, bodies: [bodyOf(text)] })
    }
  })

  test('every function a migration ever created has its file', () => {
    const created = new Set<string>()
    for (const file of readdirSync('drizzle').filter((f) => f.endsWith('.sql')))
      for (const match of readFileSync(`drizzle/${file}`, 'utf8').matchAll(/CREATE (?:OR REPLACE )?FUNCTION (\w+)\(/g))
        created.add(match[1]!)
    expect([...created].sort()).toEqual(functionFiles().map((file) => file.name))
  })

  test('applying them again changes nothing', async () => {
    const before = await sql`SELECT proname, prosrc FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY proname`
    await applyFunctions(sql)
    const after = await sql`SELECT proname, prosrc FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY proname`
    expect(after).toEqual(before)
  })
})
