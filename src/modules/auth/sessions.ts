import { createHash, randomBytes } from 'node:crypto'
import { and, desc, eq, gt, isNull, lt, ne, or, sql as expression, type SQL } from 'drizzle-orm'
import { config, durationSeconds } from '../../config'
import { db, sql } from '../../db/client'
import { sessions } from '../../db/schema'
import { unauthorized } from '../../lib/errors'
import { announceRevoked } from './revocation'

export const ACCESS_TOKEN_SECONDS = durationSeconds(config.JWT_EXPIRES_IN)
const REFRESH_TOKEN_SECONDS = durationSeconds(config.REFRESH_TOKEN_TTL)

// 256 random bits, base64url-encoded: 43 characters.
const REFRESH_TOKEN_FORMAT = /^[A-Za-z0-9_-]{43}$/
const newRefreshToken = () => randomBytes(32).toString('base64url')
// A fast hash is enough (and a slow one would be wrong): the token is random, so there is nothing
// to guess from the hash, and it must be found by equality through the primary key.
const hashOf = (token: string) => createHash('sha256').update(token).digest('hex')

/** Where a session is used from, shown in the session list. */
export type Device = { userAgent: string | null; ip: string | null }

/** Starts a session for a user who has just proved who they are; returns its first refresh token. */
export async function startSession(userId: number, device: Device) {
  const refreshToken = newRefreshToken()
  const [row] = await sql<{ session_id: number }[]>`
    WITH session AS (
      INSERT INTO sessions (user_id, user_agent, ip, expires_at)
      VALUES (${userId}, ${device.userAgent}, ${device.ip}, now() + ${REFRESH_TOKEN_SECONDS} * interval '1 second')
      RETURNING id
    )
    INSERT INTO refresh_tokens (token_hash, session_id)
    SELECT ${hashOf(refreshToken)}, id FROM session
    RETURNING session_id`
  return { sessionId: row!.session_id, refreshToken }
}

/**
 * Spends a refresh token and gives its session a new one (rotation). The spend is a conditional
 * update, so of concurrent refreshes with one token exactly one wins. A token that was already
 * spent is a replay, by a thief or by the client a thief raced: the session is revoked.
 */
export async function rotateRefreshToken(presented: string, device: Device) {
  if (!REFRESH_TOKEN_FORMAT.test(presented)) throw unauthorized('Invalid refresh token')
  const presentedHash = hashOf(presented)
  const refreshToken = newRefreshToken()
  const [rotated] = await sql<{ session_id: number; user_id: number }[]>`
    WITH spent AS (
      UPDATE refresh_tokens SET spent_at = now()
      FROM sessions
      WHERE refresh_tokens.token_hash = ${presentedHash} AND refresh_tokens.spent_at IS NULL
        AND sessions.id = refresh_tokens.session_id
        AND sessions.revoked_at IS NULL AND sessions.expires_at > now()
      RETURNING refresh_tokens.session_id
    ), session AS (
      UPDATE sessions
      SET last_used_at = now(),
          expires_at = now() + ${REFRESH_TOKEN_SECONDS} * interval '1 second',
          user_agent = coalesce(${device.userAgent}, user_agent),
          ip = coalesce(${device.ip}, ip)
      FROM spent
      WHERE sessions.id = spent.session_id AND sessions.revoked_at IS NULL
      RETURNING sessions.id, sessions.user_id
    ), issued AS (
      INSERT INTO refresh_tokens (token_hash, session_id)
      SELECT ${hashOf(refreshToken)}, id FROM session
    )
    SELECT id AS session_id, user_id FROM session`
  if (rotated) return { sessionId: rotated.session_id, userId: rotated.user_id, refreshToken }

  const [known] = await sql<{ session_id: number; spent_at: string | null }[]>`
    SELECT session_id, spent_at FROM refresh_tokens WHERE token_hash = ${presentedHash}`
  if (known?.spent_at) {
    await revokeSessions(eq(sessions.id, known.session_id))
    throw unauthorized('This refresh token was already used: the session is revoked, sign in again')
  }
  throw unauthorized('Invalid, expired or revoked refresh token')
}

/** Revokes the live sessions matching `which` and tells every API process; returns their ids. */
async function revokeSessions(which: SQL | undefined): Promise<number[]> {
  const rows = await db
    .update(sessions)
    .set({ revokedAt: expression`now()` })
    .where(and(which, isNull(sessions.revokedAt)))
    .returning({ id: sessions.id })
  const ids = rows.map((row) => row.id)
  await announceRevoked(ids)
  return ids
}

/** Revokes one of the user's sessions; false when the user has no such live session. */
export const revokeSession = async (userId: number, sessionId: number) =>
  (await revokeSessions(and(eq(sessions.userId, userId), eq(sessions.id, sessionId)))).length > 0

/** Revokes all of the user's sessions, or all but `except` (the caller's own). */
export const revokeUserSessions = (userId: number, except?: number) =>
  revokeSessions(and(eq(sessions.userId, userId), except === undefined ? undefined : ne(sessions.id, except)))

/** The user's live sessions, newest first. */
export async function listSessions(userId: number, currentSessionId: number) {
  const rows = await db
    .select()
    .from(sessions)
    .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt), gt(sessions.expiresAt, expression`now()`)))
    .orderBy(desc(sessions.createdAt), desc(sessions.id))
  return rows.map((row) => ({
    id: row.id,
    created_at: row.createdAt.toISOString(),
    last_used_at: row.lastUsedAt.toISOString(),
    expires_at: row.expiresAt.toISOString(),
    user_agent: row.userAgent,
    ip: row.ip,
    current: row.id === currentSessionId,
  }))
}

const SPENT_TOKEN_SECONDS = durationSeconds(config.SPENT_REFRESH_TOKEN_RETENTION)

/**
 * Spent refresh tokens go once SPENT_REFRESH_TOKEN_RETENTION has passed: an always-on client
 * spends one every access-token lifetime, for as long as its session lives.
 */
export async function deleteSpentRefreshTokens(): Promise<number> {
  const deleted = await sql`
    DELETE FROM refresh_tokens WHERE spent_at < now() - ${SPENT_TOKEN_SECONDS} * interval '1 second'`
  return deleted.count
}

/** Sessions that expired or were revoked over a week ago go, with their refresh tokens. */
export async function deleteEndedSessions(): Promise<number> {
  const weekAgo = expression`now() - interval '7 days'`
  const rows = await db
    .delete(sessions)
    .where(or(lt(sessions.expiresAt, weekAgo), lt(sessions.revokedAt, weekAgo)))
    .returning({ id: sessions.id })
  return rows.length
}
