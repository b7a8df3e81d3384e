import { and, eq, sql } from 'drizzle-orm'
import { db } from '../../db/client'
import { users } from '../../db/schema'
import { badRequest, conflict, unauthorized } from '../../lib/errors'
import type { Role, User } from './model'
import { revokeUserSessions } from './sessions'

// OWASP's argon2id baseline: slow to guess, but small enough (19 MiB) to keep the API lean.
const HASH_OPTIONS = { algorithm: 'argon2id', memoryCost: 19_456, timeCost: 2 } as const

export const hashPassword = (password: string) => Bun.password.hash(password, HASH_OPTIONS)

// Verifying against this when the email is unknown makes both failures take the same time.
let dummyHash: Promise<string> | undefined
const timingDummy = () => (dummyHash ??= hashPassword('not-a-real-password-only-for-timing'))

export const normalizeEmail = (email: string) => email.trim().toLowerCase()

type UserRow = typeof users.$inferSelect

export const toUser = (row: Pick<UserRow, 'id' | 'email' | 'role' | 'createdAt'>): User => ({
  id: row.id,
  email: row.email,
  role: row.role,
  created_at: row.createdAt.toISOString(),
})

export async function registerCustomer(email: string, password: string): Promise<User> {
  const passwordHash = await hashPassword(password)
  const [row] = await db
    .insert(users)
    .values({ email: normalizeEmail(email), passwordHash, role: 'customer' })
    .onConflictDoNothing()
    .returning()
  if (!row) throw conflict('Email is already registered')
  return toUser(row)
}

async function checkCredentials(email: string, password: string): Promise<UserRow> {
  const [row] = await db
    .select()
    .from(users)
    .where(eq(sql`lower(${users.email})`, normalizeEmail(email)))
  const valid = await Bun.password.verify(password, row?.passwordHash ?? (await timingDummy()))
  if (!row || !valid) throw unauthorized('Invalid email or password')
  return row
}

export const verifyCredentials = async (email: string, password: string): Promise<User> =>
  toUser(await checkCredentials(email, password))

/**
 * Checks the credentials and also returns the password hash they were checked against: a
 * credential remembered between requests must still match it (a password change replaces it).
 */
export async function verifyCredentialsWithHash(email: string, password: string) {
  const row = await checkCredentials(email, password)
  return { user: toUser(row), passwordHash: row.passwordHash }
}

/** The account's current role and password hash, to re-check a remembered credential. */
export type AccountStamp = { role: Role; passwordHash: string }

export async function accountStamp(id: number): Promise<AccountStamp | undefined> {
  const [row] = await db
    .select({ role: users.role, passwordHash: users.passwordHash })
    .from(users)
    .where(eq(users.id, id))
  return row
}

export async function findUser(id: number): Promise<User | undefined> {
  const [row] = await db.select().from(users).where(eq(users.id, id))
  return row && toUser(row)
}

/**
 * Creates the account or, when it exists, sets its password and role (db:seed). A change of
 * either ends the account's sessions, as a password change or `user:role` does; the same
 * password and role again change nothing, so re-running the seed signs no one out.
 */
export async function upsertUser(email: string, password: string, role: Role): Promise<User> {
  const normalized = normalizeEmail(email)
  const [existing] = await db
    .select()
    .from(users)
    .where(eq(sql`lower(${users.email})`, normalized))
  if (!existing) {
    const [row] = await db
      .insert(users)
      .values({ email: normalized, passwordHash: await hashPassword(password), role })
      .returning()
    return toUser(row!)
  }
  if (existing.role === role && (await Bun.password.verify(password, existing.passwordHash))) return toUser(existing)
  const [row] = await db
    .update(users)
    .set({ passwordHash: await hashPassword(password), role })
    .where(eq(users.id, existing.id))
    .returning()
  await revokeUserSessions(existing.id)
  return toUser(row!)
}

/** Sets the account's role and ends all its sessions: its tokens were issued for the old role. */
export async function setRole(email: string, role: Role): Promise<User | undefined> {
  const [row] = await db
    .update(users)
    .set({ role })
    .where(eq(sql`lower(${users.email})`, normalizeEmail(email)))
    .returning()
  if (row) await revokeUserSessions(row.id)
  return row && toUser(row)
}

/**
 * Replaces the password once the current one is proved, and ends every other session of the
 * user: whoever knew the old password is signed out, the device that changed it stays in. The
 * update is conditional on the hash that was checked, so of concurrent changes exactly one wins;
 * the others find the current password changed under them.
 */
export async function changePassword(userId: number, sessionId: number, current: string, next: string) {
  const [row] = await db.select({ passwordHash: users.passwordHash }).from(users).where(eq(users.id, userId))
  if (!row || !(await Bun.password.verify(current, row.passwordHash)))
    throw badRequest('The current password is not correct')
  const changed = await db
    .update(users)
    .set({ passwordHash: await hashPassword(next) })
    .where(and(eq(users.id, userId), eq(users.passwordHash, row.passwordHash)))
    .returning({ id: users.id })
  if (!changed.length) throw badRequest('The current password is not correct')
  await revokeUserSessions(userId, sessionId)
}
