import { Elysia } from 'elysia'
import { LRUCache } from 'lru-cache'
import { createHash } from 'node:crypto'
import { producer } from '../../jobs/redis'
import { logger } from '../../lib/logger'
import { verifyCredentials } from '../auth/service'

export const DASHBOARD_PATH = '/admin/queues'

// A browser cannot send a bearer header to a page, so the dashboard asks for HTTP basic auth
// with an admin's email and password. A verified header is remembered for a few minutes, so
// the dashboard's polling does not run a slow password hash on every request.
const verified = new LRUCache<string, true>({ max: 1_000, ttl: 5 * 60_000 })

async function isAdmin(header: string | null): Promise<boolean> {
  const match = header?.match(/^Basic\s+([A-Za-z0-9+/=]+)$/i)
  if (!match) return false
  const key = createHash('sha256').update(match[1]!).digest('hex')
  if (verified.get(key)) return true
  const decoded = Buffer.from(match[1]!, 'base64').toString()
  const colon = decoded.indexOf(':')
  if (colon < 1) return false
  try {
    const user = await verifyCredentials(decoded.slice(0, colon), decoded.slice(colon + 1))
    if (user.role !== 'admin') return false
  } catch {
    return false
  }
  verified.set(key, true)
  return true
}

const challenge = () =>
  new Response(JSON.stringify({ error: 'Admin credentials required' }), {
    status: 401,
    headers: {
      'content-type': 'application/json',
      'www-authenticate': 'Basic realm="Order API queues", charset="UTF-8"',
    },
  })

type Board = { handle(request: Request): Promise<Response> }
let board: Promise<Board> | undefined

/**
 * Bull Board is loaded on the first admin visit, not at start-up: it weighs ~18 MB of memory
 * that an API process serving orders should not carry until an operator asks for it.
 */
function loadBoard(): Promise<Board> {
  board ??= (async () => {
    const [{ createBullBoard }, { BullMQAdapter }, { ElysiaAdapter }] = await Promise.all([
      import('@bull-board/api'),
      import('@bull-board/api/bullMQAdapter'),
      import('@bull-board/elysia'),
    ])
    const serverAdapter = new ElysiaAdapter(DASHBOARD_PATH)
    createBullBoard({
      queues: Object.values(producer().queues).map((queue) => new BullMQAdapter(queue)),
      serverAdapter,
      options: { uiConfig: { boardTitle: 'Order API queues' } },
    })
    return serverAdapter.registerPlugin()
  })()
  return board
}

/** Bull Board at /admin/queues, for admins only (HTTP basic auth). */
export const queueDashboard = new Elysia({ name: 'queue-dashboard' })
  .onRequest(async ({ request }) => {
    const path = new URL(request.url).pathname
    if (path !== DASHBOARD_PATH && !path.startsWith(`${DASHBOARD_PATH}/`)) return
    if (await isAdmin(request.headers.get('authorization'))) return
    logger.debug({ path }, 'queue dashboard: credentials refused')
    return challenge()
  })
  .all(DASHBOARD_PATH, async ({ request }) => (await loadBoard()).handle(request), { detail: { hide: true } })
  .all(`${DASHBOARD_PATH}/*`, async ({ request }) => (await loadBoard()).handle(request), { detail: { hide: true } })
