import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster } from 'ioredis'
import { QUEUE_NAMES } from '../src/outbox/definitions'
import { createAdmin, createProduct, freePort, sql, uniqueEmail, waitFor } from './helpers'
import { startApi, startRedisCluster, startWorker, stopServices } from './processes'

// Every Redis use on a real 3-master Redis Cluster (REDIS_CLUSTER_NODES): the queues and the
// worker, rate limits, the broadcasts between API processes, Bull Board. REDIS_URL names a port
// where nothing answers: the processes must ignore it (they would not even be ready otherwise).
// The nodes ask for a password, as a managed cluster's do.
// Each test sends its own X-Forwarded-For, so that its rate-limited attempts are its own.

const prefix = `cluster-${process.pid}`
const hashTagged = `{${prefix}}`
const dir = mkdtempSync(join(tmpdir(), 'order-api-cluster-'))
let cluster: Cluster
let apis: { base: string }[] = []
let admin: { token: string; user: { email: string } }

// The first node is named by a URL carrying the password; it serves every node.
const password = `p@ss:${process.pid}`

beforeAll(async () => {
  const nodes = await startRedisCluster(dir, password)
  const [first, ...others] = nodes
  const env = {
    REDIS_CLUSTER_NODES: [`redis://:${encodeURIComponent(password)}@${first}`, ...others].join(','),
    REDIS_URL: `redis://127.0.0.1:${freePort()}`,
    QUEUE_PREFIX: prefix,
    TRUST_PROXY: 'true',
    RATE_LIMIT_AUTH_MAX: '5',
  }
  startWorker(env)
  apis = await Promise.all([startApi(env), startApi(env)])
  cluster = new Cluster(
    nodes.map((node) => ({ host: '127.0.0.1', port: Number(node.split(':')[1]) })),
    { redisOptions: { password } },
  )
  admin = await createAdmin()
})

afterAll(async () => {
  cluster?.disconnect()
  await stopServices()
  rmSync(dir, { recursive: true, force: true })
})

const api = (index: number) => apis[index]!.base
const send = (
  base: string,
  path: string,
  from: string,
  init: { method?: string; token?: string; body?: unknown } = {},
) =>
  fetch(`${base}${path}`, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: {
      'content-type': 'application/json',
      'x-forwarded-for': from,
      ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
    },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  })

async function register(base: string, from: string) {
  const reply = await send(base, '/api/auth/register', from, {
    body: { email: uniqueEmail('cluster'), password: 'password123' },
  })
  expect(reply.status).toBe(201)
  return (await reply.json()) as { token: string; refresh_token: string }
}

/** Keys of this run's prefix on each master (each master holds the slots it owns). */
const keysByMaster = () => Promise.all(cluster.nodes('master').map((node) => node.keys(`${hashTagged}:*`)))

describe('on a Redis Cluster', () => {
  test('the prefix is hash-tagged: every key of the queues and limits is in one slot, on one master', async () => {
    await waitFor(async () => (await keysByMaster()).flat().length > 0 || undefined, 10_000)
    const byMaster = await keysByMaster()
    expect(byMaster.filter((keys) => keys.length > 0)).toHaveLength(1)
    const untagged = await Promise.all(cluster.nodes('master').map((node) => node.keys(`${prefix}*`)))
    expect(untagged.flat()).toEqual([])
  })

  test('an order placed on one API is relayed and confirmed by the worker, through the cluster', async () => {
    const product = await createProduct(admin.token, { inventory: 10 })
    const customer = await register(api(0), '10.0.1.1')
    const placed = await send(api(0), '/api/orders', '10.0.1.1', {
      token: customer.token,
      body: { items: [{ product_id: product.id, quantity: 2 }] },
    })
    expect(placed.status).toBe(201)
    const order = (await placed.json()) as { id: number }
    const status = () => sql<{ status: string }[]>`SELECT status FROM orders WHERE id = ${order.id}`
    expect(await waitFor(async () => (await status())[0]?.status === 'confirmed' || undefined, 20_000)).toBe(true)
    const keys = (await keysByMaster()).flat()
    expect(keys.some((key) => key.startsWith(`${hashTagged}:order-confirmation:`))).toBe(true)
  })

  test('login attempts are counted in the cluster: the limit holds across both APIs', async () => {
    const from = '10.0.1.2'
    const login = (index: number) =>
      send(api(index), '/api/auth/login', from, { body: { email: uniqueEmail('nobody'), password: 'wrong-password' } })
    const statuses = []
    for (let attempt = 0; attempt < 5; attempt++) statuses.push((await login(attempt % 2)).status)
    expect(statuses).toEqual([401, 401, 401, 401, 401])
    const refused = await login(1)
    expect(refused.status).toBe(429)
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0)
    expect((await login(0)).status).toBe(429)
    const keys = (await keysByMaster()).flat()
    expect(keys.some((key) => key.startsWith(`${hashTagged}:rate-limit:auth`))).toBe(true)
  })

  test('a session revoked on one API is refused by the other within a second (a broadcast through the cluster)', async () => {
    const from = '10.0.1.3'
    const channel = `${hashTagged}:sessions:revoked`
    // Both APIs listen; on a cluster each node counts only its own subscribers.
    const subscribers = async () =>
      (
        await Promise.all(
          cluster.nodes('master').map(async (node) => Number(((await node.pubsub('NUMSUB', channel)) as unknown[])[1])),
        )
      ).reduce((sum, count) => sum + count, 0)
    expect(await subscribers()).toBe(2)
    const session = await register(api(0), from)
    const me = async (index: number) => (await send(api(index), '/api/auth/me', from, { token: session.token })).status
    // B checks the session, and remembers it for 5 s unless told otherwise.
    const rememberedAt = performance.now()
    for (let i = 0; i < 3; i++) expect(await me(1)).toBe(200)
    expect((await send(api(0), '/api/auth/logout', from, { token: session.token, method: 'POST' })).status).toBe(204)
    expect(await me(0)).toBe(401)
    let status = await me(1)
    while (status === 200 && performance.now() - rememberedAt < 3_000) {
      await Bun.sleep(20)
      status = await me(1)
    }
    expect({ status, withinOneSecond: performance.now() - rememberedAt < 1_000 }).toEqual({
      status: 401,
      withinOneSecond: true,
    })
  })

  test('Bull Board lists every queue, with the jobs the cluster holds', async () => {
    const credentials = Buffer.from(`${admin.user.email}:admin-password`).toString('base64')
    const reply = await fetch(`${api(1)}/admin/queues/api/queues`, {
      headers: { authorization: `Basic ${credentials}`, 'x-forwarded-for': '10.0.1.4' },
    })
    expect(reply.status).toBe(200)
    const board = (await reply.json()) as { queues: { name: string; counts: Record<string, number> }[] }
    expect(board.queues.map((queue) => queue.name).sort()).toEqual([...QUEUE_NAMES].sort())
    const confirmations = board.queues.find((queue) => queue.name === 'order-confirmation')!
    expect(confirmations.counts.completed).toBeGreaterThanOrEqual(1)
  })
})
