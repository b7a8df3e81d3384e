import { jwt } from '@elysia/jwt'
import { Elysia } from 'elysia'
import { LRUCache } from 'lru-cache'
import { config } from '../../config'
import { clientAddress } from '../../lib/client-address'
import { forbidden, unauthorized } from '../../lib/errors'
import { sharedLimit } from '../../lib/rate-limit'
import type { Role } from './model'
import { sessionRole } from './revocation'
import { ACCESS_TOKEN_SECONDS } from './sessions'

/** The signed-in caller: the user, the account's current role and the session of the token. */
export type Principal = { id: number; role: Role; sessionId: number }

export const tokens = new Elysia({ name: 'tokens' }).use(
  jwt({ name: 'jwt', secret: config.JWT_SECRET, alg: 'HS256', exp: `${ACCESS_TOKEN_SECONDS}s` }),
)

const bearerToken = (header: string | undefined) => {
  const match = header?.match(/^Bearer[ ]+([^\s]+)\s*$/i)
  return match?.[1]
}

type Claims = { sub?: string; role?: unknown; sid?: unknown; exp?: number }

const isId = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) > 0

// A token's signature never changes, so one that verified is remembered until it expires:
// WebCrypto's HMAC check costs ~0.1 ms, the largest CPU item of an authenticated request.
const verifiedTokens = new LRUCache<string, Claims>({ max: 10_000 })

async function verifiedClaims(token: string, verify: () => Promise<Claims | false>): Promise<Claims | false> {
  const remembered = verifiedTokens.get(token)
  if (remembered && (remembered.exp ?? 0) * 1000 > Date.now()) return remembered
  const claims = await verify()
  if (claims && claims.exp !== undefined) verifiedTokens.set(token, claims, { ttl: claims.exp * 1000 - Date.now() })
  return claims
}

// The token is checked in `transform`, which runs before body validation, so that a request
// without a valid token is answered 401/403 whatever its body; `resolve` then hands it on.
const principals = new WeakMap<Request, Principal>()

/**
 * `auth: true` needs any signed-in user; `auth: 'admin'` or `auth: 'customer'` needs that role.
 * The token's session must be live (see revocation.ts), and the principal's role is the
 * account's current one, not the token's claim.
 */
export const authGuard = new Elysia({ name: 'auth-guard' }).use(tokens).macro({
  auth: (required: true | Role) => ({
    detail: { security: [{ bearerAuth: [] }] },
    async transform({ headers, jwt, request }) {
      const token = bearerToken(headers.authorization)
      if (!token) throw unauthorized('Missing bearer token')
      const payload = await verifiedClaims(token, () => jwt.verify(token, { algorithms: ['HS256'] }))
      if (!payload) throw unauthorized('Invalid or expired token')
      const id = Number(payload.sub)
      const sessionId = payload.sid
      if (!isId(id) || !isId(sessionId) || (payload.role !== 'admin' && payload.role !== 'customer'))
        throw unauthorized('Invalid token claims')
      const role = await sessionRole(sessionId, id, payload.role)
      if (!role) throw unauthorized('This session has ended: sign in again')
      if (required !== true && role !== required) throw forbidden(`This action requires the ${required} role`)
      principals.set(request, { id, role, sessionId })
    },
    resolve({ request }) {
      const principal = principals.get(request)
      if (!principal) throw unauthorized()
      return { principal }
    },
  }),
})

/** Sign-in attempts (login, register, refresh, password changes, the dashboard's password check) per client address. */
const attempts = sharedLimit('auth', config.RATE_LIMIT_AUTH_MAX, config.RATE_LIMIT_AUTH_WINDOW_SECONDS, 'attempts')

/** Counts one attempt of `bucket` from `address`; over the limit throws TooManyRequests (429). */
export const countAttempt = (bucket: string, address: string) => attempts.consume(`${bucket}:${address}`)

/** `rateLimit: 'login'` counts a route's attempts per client address; over the limit → 429 with Retry-After. */
export const rateLimit = new Elysia({ name: 'rate-limit' }).macro({
  rateLimit: (bucket: string) => ({
    // After validation: only well-formed attempts (the ones that could guess a password or
    // create an account) are counted; malformed ones are refused with 400 anyway.
    beforeHandle: ({ request, server }) => countAttempt(bucket, clientAddress(request, server)),
  }),
})
