import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createAdmin, createProduct, registerCustomer } from './helpers'
import { startApi, stopServices } from './processes'

// The API driven by clients other than Bun's fetch, against a real listening server.

const root = new URL('..', import.meta.url).pathname
let base: string

beforeAll(async () => {
  base = (await startApi({ RATE_LIMIT_AUTH_MAX: '1000000' })).base
})

afterAll(stopServices)

async function runNode(args: string[]) {
  const child = Bun.spawn(['node', `${root}tests/clients/connection-close.mjs`, ...args], {
    stdout: 'pipe',
    stderr: 'inherit',
  })
  expect(await child.exited).toBe(0)
  return JSON.parse(await new Response(child.stdout).text())
}

describe('Connection: close from a Node keep-alive client', () => {
  test('300 concurrent GET /health, 3 rounds: no resets, every answer says close', async () => {
    const outcome = await runNode([`${base}/health`, '3', '300'])
    expect(outcome).toEqual({ statuses: { 200: 900 }, errors: {}, connectionHeaders: { close: 900 } })
  })

  test('concurrent orders and 4xx answers too: no resets', async () => {
    const { token: adminToken } = await createAdmin()
    const product = await createProduct(adminToken, { inventory: 10_000 })
    const { token } = await registerCustomer()
    const order = JSON.stringify({ items: [{ product_id: product.id, quantity: 1 }] })
    const orders = await runNode([`${base}/api/orders`, '3', '100', 'POST', order, token])
    expect(orders).toEqual({ statuses: { 201: 300 }, errors: {}, connectionHeaders: { close: 300 } })
    const refused = await runNode([`${base}/api/orders`, '2', '100', 'POST', '{"items":[]}', 'not-a-token'])
    expect(refused).toEqual({ statuses: { 401: 200 }, errors: {}, connectionHeaders: { close: 200 } })
    const unknown = await runNode([`${base}/no-such-route`, '2', '100'])
    expect(unknown).toEqual({ statuses: { 404: 200 }, errors: {}, connectionHeaders: { close: 200 } })
  })
})
