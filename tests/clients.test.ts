import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Browser } from 'playwright-core'
import { launchChromium } from './browser'
import { createAdmin, createProduct, registerCustomer, sql } from './helpers'
import { startApi, stopServices } from './processes'

// The API driven by clients other than Bun's fetch, against a real listening server.

const root = new URL('..', import.meta.url).pathname
let base: string
let browser: Browser | undefined

beforeAll(async () => {
  base = (await startApi({ QUEUE_PREFIX: `clients-${process.pid}`, RATE_LIMIT_AUTH_MAX: '1000000' })).base
})

afterAll(async () => {
  await browser?.close()
  await stopServices()
})

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

describe('in a browser (headless Chromium)', () => {
  /** Opens `path` and collects what the page could not load or was refused by its policy. */
  async function open(path: string, credentials?: { username: string; password: string }) {
    browser ??= await launchChromium()
    const context = await browser.newContext({ httpCredentials: credentials })
    const page = await context.newPage()
    const problems: string[] = []
    page.on('console', (message) => message.type() === 'error' && problems.push(message.text()))
    page.on('pageerror', (error) => problems.push(error.message))
    page.on('requestfailed', (request) => problems.push(`${request.url()}: ${request.failure()?.errorText}`))
    const response = await page.goto(`${base}${path}`)
    return { page, response, problems, close: () => context.close() }
  }

  for (const path of ['/swagger', '/swagger/']) {
    test(`${path} renders every operation from same-origin assets, with no policy violation`, async () => {
      const { page, response, problems, close } = await open(path)
      expect(response?.status()).toBe(200)
      await page.locator('.opblock').first().waitFor({ timeout: 20_000 })
      const summaries = await page.locator('.opblock-summary-path').allTextContents()
      expect(summaries).toContain('/api/orders')
      expect(summaries).toContain('/api/products/{id}')
      expect(summaries.length).toBeGreaterThanOrEqual(16)
      expect(await page.locator('.btn.authorize').count()).toBe(1)
      expect(problems).toEqual([])
      await close()
    })
  }

  test('Swagger UI’s Authorize flow takes an access token and calls a protected route with it', async () => {
    const { token, user } = await registerCustomer('swagger')
    const { page, problems, close } = await open('/swagger')
    await page.locator('.btn.authorize').click()
    await page.locator('.modal-ux input').first().fill(token)
    await page.locator('.modal-ux .btn.authorize').click()
    await page.locator('.modal-ux .btn-done').click()
    const operation = page.locator('.opblock-get', {
      has: page.locator('.opblock-summary-path', { hasText: /^\/api\/auth\/me$/ }),
    })
    await operation.locator('.opblock-summary').click()
    await operation.locator('.try-out__btn').click()
    await operation.locator('.execute').click()
    const body = operation.locator('.live-responses-table .response-col_description pre').first()
    await body.waitFor({ timeout: 20_000 })
    expect(JSON.parse((await body.textContent()) ?? '')).toEqual({ user })
    expect(problems).toEqual([])
    await close()
  })

  test('Bull Board renders its queues behind basic auth', async () => {
    const { user } = await createAdmin()
    const [row] = await sql`SELECT email FROM users WHERE id = ${user.id}`
    const { page, response, close } = await open('/admin/queues', { username: row!.email, password: 'admin-password' })
    expect(response?.status()).toBe(200)
    await page.getByText('order-confirmation').first().waitFor({ timeout: 20_000 })
    expect(await page.getByText('audit').count()).toBeGreaterThan(0)
    await close()
    // Without credentials the browser is asked for them (Chromium then aborts the navigation).
    expect((await fetch(`${base}/admin/queues`)).headers.get('www-authenticate')).toStartWith('Basic')
  })
})
