import { beforeAll, describe, expect, test } from 'bun:test'
import { treaty } from '@elysia/eden'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { app } from '../src/app'
import { createAdmin, createProduct, inventoryOf, uniqueEmail } from './helpers'

// Eden Treaty, the client Elysia users expect: typed routes, bodies and errors from `type App`.

const root = new URL('..', import.meta.url).pathname
let admin: { token: string }

beforeAll(async () => {
  admin = await createAdmin()
})

describe('Eden Treaty over the app', () => {
  test('register → order → my orders → the order history, typed end to end; a refusal is a typed error', async () => {
    const product = await createProduct(admin.token, { inventory: 1, price_cents: 1250 })
    const anonymous = treaty(app)
    const registered = await anonymous.api.auth.register.post({ email: uniqueEmail('eden'), password: 'password123' })
    expect(registered.status).toBe(201)
    if (registered.error) throw new Error(`register refused: ${registered.error.status}`)

    const api = treaty(app, { headers: { authorization: `Bearer ${registered.data.token}` } })
    const placed = await api.api.orders.post({ items: [{ product_id: product.id, quantity: 1 }] })
    expect(placed.status).toBe(201)
    if (placed.error) throw new Error(`order refused: ${placed.error.status}`)
    expect(placed.data).toMatchObject({ status: 'pending', total_cents: 1250, user_id: registered.data.user.id })
    expect(await inventoryOf(product.id)).toBe(0)

    const mine = await api.api.orders.me.get({ query: { page: 1 } })
    expect(mine.data?.data.map((order) => order.id)).toEqual([placed.data.id])

    const history = await api.api.orders({ id: placed.data.id }).history.get()
    expect(history.data?.data[0]).toMatchObject({ from_status: null, to_status: 'pending' })

    // The only unit is gone: 409 with the API's error body, typed by its status.
    const refused = await api.api.orders.post({ items: [{ product_id: product.id, quantity: 1 }] })
    expect(refused.data).toBeNull()
    expect(refused.error?.status).toBe(409)
    if (refused.error?.status !== 409) throw new Error('expected a 409')
    expect(refused.error.value.error).toContain('nsufficient')

    const unauthenticated = await anonymous.api.orders.me.get({ query: { page: 1 } })
    expect(unauthenticated.error?.status).toBe(401)
  })
})

describe('a separate TypeScript project importing only `type App` (examples/eden-client)', () => {
  const tsc = (project: string) => {
    const run = Bun.spawnSync([process.execPath, join(root, 'node_modules/typescript/bin/tsc'), '-p', project])
    return { code: run.exitCode, output: `${run.stdout}${run.stderr}` }
  }

  test('type-checks under a front-end configuration (DOM, no Bun types)', () => {
    const source = readFileSync(join(root, 'examples/eden-client/client.ts'), 'utf8')
    expect(source).toContain("import type { App } from '../../src/app'")
    expect(source).not.toMatch(/import \{[^}]*\} from '\.\.\/\.\.\/src/)
    const { code, output } = tsc(join(root, 'examples/eden-client'))
    expect(output).toBe('')
    expect(code).toBe(0)
  })

  test('the types are real: a wrong body or a field the API does not send fails the check', () => {
    const dir = mkdtempSync(join(root, 'examples/.eden-client-'))
    try {
      cpSync(join(root, 'examples/eden-client/tsconfig.json'), join(dir, 'tsconfig.json'))
      const source = readFileSync(join(root, 'examples/eden-client/client.ts'), 'utf8')
      const broken = source
        .replace('quantity: 1', "quantity: 'one'")
        .replace('totalCents: placed.data.total_cents', 'totalCents: placed.data.total')
      expect(broken).not.toBe(source)
      writeFileSync(join(dir, 'client.ts'), broken)
      const { code, output } = tsc(dir)
      expect(code).not.toBe(0)
      expect(output).toMatch(/client\.ts\(\d+,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/)
      expect(output).toMatch(/client\.ts\(\d+,\d+\): error TS2339: Property 'total' does not exist/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
