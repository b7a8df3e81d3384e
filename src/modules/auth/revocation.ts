import { and, eq, isNull } from 'drizzle-orm'
import { LRUCache } from 'lru-cache'
import { db } from '../../db/client'
import { sessions, users } from '../../db/schema'
import { broadcast, listen, listening } from '../../lib/broadcast'
import type { Role } from './model'

const CHANNEL = 'sessions:revoked'

type SessionState = { userId: number; role: Role } | 'revoked'

// Every authenticated request checks its token's session (revoked?) and the account's current
// role. Customer sessions, nearly all the traffic, are remembered per process, so that check is
// one primary-key read per TTL rather than per request; a token claiming admin always reads.
// A revocation reaches every process's memory through a broadcast. While this process is not
// subscribed (Redis down, reconnecting) it may miss one, so it remembers nothing until it is;
// and a broadcast its sender could not publish (a partition between that process and Redis) is
// retried for as long as anyone remembers: REMEMBER_MS bounds how long a revoked session lives.
const REMEMBER_MS = 5_000
const remembered = new LRUCache<number, SessionState>({ max: 50_000, ttl: REMEMBER_MS })
// Bumped by every revocation: a read that began before one must not be remembered after it.
let generation = 0

function forget(sessionIds: number[]) {
  generation++
  for (const id of sessionIds) remembered.delete(id)
}

/** Hears the other processes' revocations (startApp in app.ts, before startBroadcasts); until then nothing is remembered. */
export function followRevocations() {
  listen(CHANNEL, {
    onMessage: (ids) => {
      if (Array.isArray(ids)) forget(ids.filter(Number.isSafeInteger))
    },
    onResync: () => {
      generation++
      remembered.clear()
    },
  })
}

/**
 * The role of the account behind a live session, or null when the session is revoked or gone,
 * or is not the user's. `claimedRole` is the token's: only customer sessions are remembered,
 * so a promotion or demotion of an admin counts at once.
 */
export async function sessionRole(sessionId: number, userId: number, claimedRole: Role): Promise<Role | null> {
  const remember = claimedRole === 'customer' && listening()
  let state = remember ? remembered.get(sessionId) : undefined
  if (!state) {
    const startedAt = generation
    const rows = await db
      .select({ userId: sessions.userId, role: users.role })
      .from(sessions)
      .innerJoin(users, eq(users.id, sessions.userId))
      .where(and(eq(sessions.id, sessionId), isNull(sessions.revokedAt)))
    state = rows.at(0) ?? 'revoked'
    if (remember && startedAt === generation && (state === 'revoked' || state.role === 'customer'))
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
  await broadcast(CHANNEL, sessionIds, REMEMBER_MS)
}
