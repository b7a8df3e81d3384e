import { eq } from 'drizzle-orm'
import { db } from '../../db/client'
import { users } from '../../db/schema'
import type { Role } from './model'

// Tokens are checked against the account they name, so that a deleted user's token stops
// working and a role change takes effect. Customer tokens, nearly all the traffic, go through
// a short-lived cache (one primary-key lookup per TTL, not per request); a token claiming
// admin always reads the database, so a promotion or a demotion counts at once.
const TTL_MS = 15_000
const MAX_ENTRIES = 50_000
const cache = new Map<number, { role: Role | null; until: number }>()

/** The account's current role, or null when it no longer exists. */
export async function currentRole(userId: number, claimedRole: Role): Promise<Role | null> {
  const now = Date.now()
  const hit = cache.get(userId)
  if (claimedRole === 'customer' && hit && hit.until > now && hit.role === 'customer') return hit.role
  const [row] = await db.select({ role: users.role }).from(users).where(eq(users.id, userId))
  if (cache.size >= MAX_ENTRIES) cache.clear()
  const role = row?.role ?? null
  cache.set(userId, { role, until: now + TTL_MS })
  return role
}
