import { eq } from 'drizzle-orm'
import { LRUCache } from 'lru-cache'
import { db } from '../../db/client'
import { users } from '../../db/schema'
import type { Role } from './model'

// Tokens are checked against the account they name, so that a deleted user's token stops
// working and a role change takes effect. Customer tokens, nearly all the traffic, go through
// a short-lived cache (one primary-key lookup per TTL, not per request); a token claiming
// admin always reads the database, so a promotion or a demotion counts at once.
const cache = new LRUCache<number, { role: Role | null }>({ max: 50_000, ttl: 15_000 })

/** The account's current role, or null when it no longer exists. */
export async function currentRole(userId: number, claimedRole: Role): Promise<Role | null> {
  if (claimedRole === 'customer' && cache.get(userId)?.role === 'customer') return 'customer'
  const [row] = await db.select({ role: users.role }).from(users).where(eq(users.id, userId))
  const role = row?.role ?? null
  cache.set(userId, { role })
  return role
}
