import { afterAll, describe, expect, test } from 'bun:test'
import SwaggerParser from '@apidevtools/swagger-parser'
import { generateOpenApiTypes, TYPES_FILE } from '../scripts/openapi-types'
import { sessionJourney, shopperJourney } from './api-client'
import { createAdmin, createProduct } from './helpers'
import { startApi, stopServices } from './processes'

// The published document is the contract clients build on: it must validate, it must match
// the committed generated types, and a client typed only by it must be able to shop.

afterAll(stopServices)

describe('the OpenAPI document', () => {
  let base: string
  let document: any

  test('is served at /swagger/json and validates as OpenAPI 3.1', async () => {
    base = (await startApi({ QUEUE_PREFIX: `docs-${process.pid}` })).base
    document = await (await fetch(`${base}/swagger/json`)).json()
    expect(document.openapi).toBe('3.1.0')
    await SwaggerParser.validate(structuredClone(document))
  })

  test('every operation has a summary, tags, JSON schemas for bodies and responses, and error schemas', () => {
    let operations = 0
    for (const [path, item] of Object.entries<any>(document.paths)) {
      for (const [method, operation] of Object.entries<any>(item)) {
        operations++
        const where = `${method.toUpperCase()} ${path}`
        expect({ where, summary: typeof operation.summary }).toEqual({ where, summary: 'string' })
        expect(operation.tags.length).toBeGreaterThan(0)
        if (operation.requestBody) {
          expect({ where, types: Object.keys(operation.requestBody.content) }).toEqual({
            where,
            types: ['application/json'],
          })
          expect(operation.requestBody.content['application/json'].schema.properties).toBeObject()
        }
        for (const [status, response] of Object.entries<any>(operation.responses)) {
          // What the status means here, not the plugin's placeholder.
          expect(response.description).toBeString()
          expect(response.description).not.toMatch(/^Response for status/)
          // 204 and 304 have no body; an export's download is CSV.
          if (where === 'GET /api/admin/exports/{id}/download' && status === '200')
            expect(response.content['text/csv'].schema.type).toBe('string')
          else if (status !== '204' && status !== '304')
            expect(response.content['application/json'].schema).toBeObject()
          if (Number(status) >= 400) expect(response.content['application/json'].schema.required).toContain('error')
        }
      }
    }
    expect(operations).toBeGreaterThanOrEqual(16)
  })

  test('the main requests carry examples', () => {
    const bodyExample = (path: string) => {
      const schema = document.paths[path].post.requestBody.content['application/json'].schema
      return schema.examples ?? Object.values<any>(schema.properties).flatMap((property) => property.examples ?? [])
    }
    for (const path of ['/api/auth/register', '/api/auth/login', '/api/products', '/api/orders'])
      expect({ path, examples: bodyExample(path).length > 0 }).toEqual({ path, examples: true })
  })

  test('says what requests accept: unknown fields are ignored, whichever routes have served traffic', async () => {
    const admin = await createAdmin()
    const product = await createProduct(admin.token, { inventory: 5, price_cents: 700 })
    const register = await fetch(`${base}/api/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: `docs-${Date.now()}@example.com`, password: 'password123', role: 'admin', x: 1 }),
    })
    expect(register.status).toBe(201)
    const { token, user } = (await register.json()) as { token: string; user: { role: string } }
    expect(user.role).toBe('customer')
    // A client may send a price: it is ignored, not refused.
    const order = await fetch(`${base}/api/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ items: [{ product_id: product.id, quantity: 1, price_cents: 1 }], total_cents: 1 }),
    })
    expect(order.status).toBe(201)
    expect(((await order.json()) as { total_cents: number }).total_cents).toBe(700)
    // Those routes have now been compiled; the document must not have changed its mind.
    const after = await (await fetch(`${base}/swagger/json`)).json()
    expect(after).toEqual(document)
    expect(JSON.stringify(after)).not.toContain('"additionalProperties":false')
  })

  test('the committed generated types match the document (run `bun run docs:types` after changing routes)', async () => {
    expect(await generateOpenApiTypes(document)).toBe(await Bun.file(TYPES_FILE).text())
  })

  test('a client generated from it (openapi-typescript + openapi-fetch) runs a full shopping flow', async () => {
    const admin = await createAdmin()
    const product = await createProduct(admin.token, { inventory: 10, price_cents: 450 })
    const journey = await shopperJourney(base, product.id)
    expect(journey.registered.response.status).toBe(201)
    expect(journey.login.user.role).toBe('customer')
    expect(journey.products.data?.data.every((p) => p.is_active)).toBe(true)
    expect(journey.product.data?.id).toBe(product.id)
    expect(journey.order.response.status).toBe(201)
    expect(journey.order.data?.total_cents).toBe(900)
    expect(journey.mine.data?.data.map((o) => o.id)).toEqual([journey.order.data!.id])
    expect(journey.me.data?.user.email).toBe(journey.login.user.email)
  })

  test('a client typed by it runs a whole session: register, refresh, logout, and the refresh fails', async () => {
    const journey = await sessionJourney(base)
    expect(journey.refreshed.refresh_token).not.toBe(journey.registered.refresh_token)
    expect(journey.refreshed.expires_in).toBe(900)
    expect(journey.sessions.data?.data.filter((session) => session.current)).toHaveLength(1)
    expect(journey.logout.response.status).toBe(204)
    expect(journey.refreshAfterLogout.response.status).toBe(401)
    expect(journey.refreshAfterLogout.error?.error).toBeString()
    expect(journey.meAfterLogout.response.status).toBe(401)
  })
})
