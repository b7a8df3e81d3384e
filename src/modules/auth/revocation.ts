import { and, eq, isNull } from 'drizzle-orm'
import type IORedis from 'ioredis'
import { LRUCache } from 'lru-cache'
import { config } from '../../config'
import { db } from '../../db/client'
import { sessions, users } from '../../db/schema'
import { logger } from '../../lib/logger'
import { createSubscriberConnection, logRedisErrors, redis, whenRedisReady } from '../../lib/redis'
import type { Role } from './model'

const CHANNEL = `${config.QUEUE_PREFIX}:sessions:revoked`

type SessionState = { userId: number; role: Role } | 'revoked'

// Every authenticated request checks its token's session (revoked?) and the account's current
// role. Customer sessions, nearly all the traffic, are remembered per process, so that check is
// one primary-key read per TTL rather than per request; a token claiming admin always reads.
// A revocation reaches every process's memory through Redis pub/sub. While this process is not
// subscribed (Redis down, reconnecting) it may miss one, so it remembers nothing until it is.
const remembered = new LRUCache<number, SessionState>({ max: 50_000, ttl: 15_000 })
let subscriber: IORedis | undefined
let subscribed = false
// Bumped by every revocation: a read that began before one must not be remembered after it.
let generation = 0

function forget(sessionIds: number[]) {
  generation++
  for (const id of sessionIds) remembered.delete(id)
}

function listen() {
  if (subscriber) return
  const connection = createSubscriberConnection()
  subscriber = connection
  logRedisErrors(connection, 'session revocations')
  connection.on('close', () => {
    subscribed = false
  })
  connection.on('ready', async () => {
    try {
      await connection.subscribe(CHANNEL)
      // Messages sent while we were away are lost: start from nothing.
      generation++
      remembered.clear()
      subscribed = true
    } catch (error) {
      logger.warn({ err: error }, 'could not subscribe to session revocations')
    }
  })
  connection.on('message', (_channel: string, message: string) => {
    try {
      const ids: unknown = JSON.parse(message)
      if (Array.isArray(ids)) forget(ids.filter(Number.isSafeInteger))
    } catch {
      logger.warn('ignored a malformed session revocation message')
    }
  })
}

/**
 * The role of the account behind a live session, or null when the session is revoked or gone,
 * or is not the user's. `claimedRole` is the token's: only customer sessions are remembered,
 * so a promotion or demotion of an admin counts at once.
 */
export async function sessionRole(sessionId: number, userId: number, claimedRole: Role): Promise<Role | null> {
  listen()
  const known = claimedRole === 'customer' && subscribed ? remembered.get(sessionId) : undefined
  let state = known
  if (!state) {
    const startedAt = generation
    const [row] = await db
      .select({ userId: sessions.userId, role: users.role })
      .from(sessions)
      .innerJoin(users, eq(users.id, sessions.userId))
      .where(and(eq(sessions.id, sessionId), isNull(sessions.revokedAt)))
    state = row ?? 'revoked'
    if (subscribed && startedAt === generation && (state === 'revoked' || state.role === 'customer'))
      remembered.set(sessionId, state)
  }
  return state !== 'revoked' && state.userId === userId ? state.role : null
}

/**
 * Tells every API process that these sessions are revoked: this one forgets them at once, the
 * others when the message arrives. Call it after the revocation has committed.
 */
export async function announceRevoked(sessionIds: number[]) {
  if (sessionIds.length === 0) return
  forget(sessionIds)
  try {
    if (!(await whenRedisReady(1_000))) throw new Error('Redis is not connected')
    await redis().publish(CHANNEL, JSON.stringify(sessionIds))
  } catch (error) {
    // Redis is down: the other processes' subscriptions are down too, so they remember nothing.
    logger.warn({ err: error, sessions: sessionIds.length }, 'could not announce revoked sessions')
  }
}

export async function closeRevocations() {
  const connection = subscriber
  subscriber = undefined
  subscribed = false
  connection?.disconnect()
}
