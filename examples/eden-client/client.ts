// A front-end's typed client: it imports only the API's type, never its code.
import { treaty } from '@elysia/eden'
import type { App } from '../../src/app'

let token: string | undefined
const api = treaty<App>('http://localhost:3000', {
  headers: () => (token ? { authorization: `Bearer ${token}` } : {}),
})

export async function orderOne(email: string, password: string, productId: number) {
  const session = await api.api.auth.login.post({ email, password })
  if (session.error) throw new Error(`login refused (${session.error.status})`)
  token = session.data.token
  const placed = await api.api.orders.post({ items: [{ product_id: productId, quantity: 1 }] })
  if (placed.error) {
    if (placed.error.status === 409) return { refused: placed.error.value.error }
    throw new Error(`order refused (${placed.error.status})`)
  }
  const mine = await api.api.orders.me.get({ query: { page: 1 } })
  return { id: placed.data.id, totalCents: placed.data.total_cents, ordersSoFar: mine.data?.total }
}
