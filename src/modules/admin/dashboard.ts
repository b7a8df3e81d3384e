import { Elysia } from 'elysia'
import { LRUCache } from 'lru-cache'
import { createHash } from 'node:crypto'
import { queues } from '../../outbox/queues'
import { logger } from '../../lib/logger'
import { clientAddress } from '../../lib/client-address'
import { countAttempt } from '../auth/guard'
import { accountStamp, verifyCredentialsWithHash } from '../auth/service'

export const DASHBOARD_PATH = '/admin/queues'

// A browser cannot send a bearer header to a page, so the dashboard asks for HTTP basic auth
// with an admin's email and password. The slow password hash runs once per credential and
// counts against the login rate limit of the caller's address (one budget for both doors);
// afterwards a remembered credential costs one primary-key read per request, which still
// refuses it at once after a demotion or a password change.
const verified = new LRUCache<string, { userId: number; passwordHash: string }>({ max: 1_000, ttl: 5 * 60_000 })

type Server = Parameters<typeof clientAddress>[1]

async function isAdmin(request: Request, server: Server): Promise<boolean> {
  const match = request.headers.get('authorization')?.match(/^Basic\s+([A-Za-z0-9+/=]+)$/i)
  if (!match) return false
  const key = createHash('sha256').update(match[1]!).digest('hex')
  const remembered = verified.get(key)
  if (remembered) {
    const stamp = await accountStamp(remembered.userId)
    if (stamp?.role === 'admin' && stamp.passwordHash === remembered.passwordHash) return true
    verified.delete(key)
    return false
  }
  const decoded = Buffer.from(match[1]!, 'base64').toString()
  const colon = decoded.indexOf(':')
  if (colon < 1) return false
  await countAttempt('login', clientAddress(request, server))
  try {
    const { user, passwordHash } = await verifyCredentialsWithHash(decoded.slice(0, colon), decoded.slice(colon + 1))
    if (user.role !== 'admin') return false
    verified.set(key, { userId: user.id, passwordHash })
    return true
  } catch {
    return false
  }
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
      queues: Object.values(queues()).map((queue) => new BullMQAdapter(queue)),
      serverAdapter,
      options: { uiConfig: { boardTitle: 'Order API queues' } },
    })
    return serverAdapter.registerPlugin()
  })()
  return board
}

/** Bull Board at /admin/queues, for admins only (HTTP basic auth). */
export const queueDashboard = new Elysia({ name: 'queue-dashboard' })
  // Runs on every request: other paths leave at a string check, without a promise.
  .onRequest(({ request, server }) => {
    if (!request.url.includes(DASHBOARD_PATH)) return
    const path = new URL(request.url).pathname
    if (path !== DASHBOARD_PATH && !path.startsWith(`${DASHBOARD_PATH}/`)) return
    return isAdmin(request, server).then((admin) => {
      if (admin) return
      logger.debug({ path }, 'queue dashboard: credentials refused')
      return challenge()
    })
  })
  .all(DASHBOARD_PATH, async ({ request }) => (await loadBoard()).handle(request), { detail: { hide: true } })
  .all(`${DASHBOARD_PATH}/*`, async ({ request }) => (await loadBoard()).handle(request), { detail: { hide: true } })
