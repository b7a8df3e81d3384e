import createClient from 'openapi-fetch'
import type { paths } from './generated/openapi'

/**
 * A shopper's whole journey through a client typed only by the published OpenAPI document:
 * if the document drifts from the routes, `make test`'s type-check or this flow fails.
 */
export async function shopperJourney(baseUrl: string, productId: number) {
  const api = createClient<paths>({ baseUrl })
  const email = `openapi-${Date.now()}-${Math.random().toString(36).slice(2)}@example.com`
  const password = 'password123'

  const registered = await api.POST('/api/auth/register', { body: { email, password } })
  const login = await api.POST('/api/auth/login', { body: { email, password } })
  if (!login.data) throw new Error(`login failed: ${JSON.stringify(login.error)}`)
  const auth = { headers: { authorization: `Bearer ${login.data.token}` } }

  const products = await api.GET('/api/products', { params: { query: { page: '1', limit: '5', active: 'true' } } })
  const product = await api.GET('/api/products/{id}', { params: { path: { id: String(productId) } } })
  const order = await api.POST('/api/orders', {
    ...auth,
    params: { header: { 'idempotency-key': `journey-${email}` } },
    body: { items: [{ product_id: productId, quantity: 2 }] },
  })
  const mine = await api.GET('/api/orders/me', auth)
  const me = await api.GET('/api/auth/me', auth)
  return { registered, login: login.data, products, product, order, mine, me }
}

/** A whole session through the typed client: register → refresh → logout → the refresh token is dead. */
export async function sessionJourney(baseUrl: string) {
  const api = createClient<paths>({ baseUrl })
  const email = `session-${Date.now()}-${Math.random().toString(36).slice(2)}@example.com`
  const registered = await api.POST('/api/auth/register', { body: { email, password: 'password123' } })
  if (!registered.data) throw new Error(`register failed: ${JSON.stringify(registered.error)}`)
  const refreshed = await api.POST('/api/auth/refresh', { body: { refresh_token: registered.data.refresh_token } })
  if (!refreshed.data) throw new Error(`refresh failed: ${JSON.stringify(refreshed.error)}`)
  const auth = { headers: { authorization: `Bearer ${refreshed.data.token}` } }
  const sessions = await api.GET('/api/auth/sessions', auth)
  const logout = await api.POST('/api/auth/logout', auth)
  const refreshAfterLogout = await api.POST('/api/auth/refresh', {
    body: { refresh_token: refreshed.data.refresh_token },
  })
  const meAfterLogout = await api.GET('/api/auth/me', auth)
  return { registered: registered.data, refreshed: refreshed.data, sessions, logout, refreshAfterLogout, meAfterLogout }
}
