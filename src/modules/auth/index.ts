import { Elysia } from 'elysia'
import { clientAddress } from '../../lib/client-address'
import { errorResponses, IdParams, emptyResponse } from '../../lib/model'
import { notFound, unauthorized } from '../../lib/errors'
import { authGuard, rateLimit } from './guard'
import {
  AuthResponse,
  Credentials,
  LoginBody,
  MeResponse,
  PasswordChange,
  RefreshBody,
  SessionList,
  type User,
} from './model'
import { changePassword, findUser, registerCustomer, verifyCredentials } from './service'
import {
  ACCESS_TOKEN_SECONDS,
  type Device,
  listSessions,
  revokeSession,
  revokeUserSessions,
  rotateRefreshToken,
  startSession,
} from './sessions'

type Signer = { sign(claims: Record<string, string | number>): Promise<string> }
type AddressSource = Parameters<typeof clientAddress>[1]

const deviceOf = (request: Request, server: AddressSource): Device => ({
  userAgent: request.headers.get('user-agent')?.slice(0, 512) || null,
  ip: clientAddress(request, server).slice(0, 64),
})

/** The answer of every sign-in: a short-lived access token naming the session, and its refresh token. */
const signedIn = async (jwt: Signer, user: User, session: { sessionId: number; refreshToken: string }) => ({
  token: await jwt.sign({ sub: String(user.id), role: user.role, sid: session.sessionId, jti: crypto.randomUUID() }),
  refresh_token: session.refreshToken,
  expires_in: ACCESS_TOKEN_SECONDS,
  user,
})

export const authRoutes = new Elysia({ prefix: '/api/auth', detail: { tags: ['Auth'] } })
  .use(authGuard)
  .use(rateLimit)
  .post(
    '/register',
    async ({ body, jwt, set, request, server }) => {
      const user = await registerCustomer(body.email, body.password)
      set.status = 201
      return signedIn(jwt, user, await startSession(user.id, deviceOf(request, server)))
    },
    {
      rateLimit: 'register',
      body: Credentials,
      parse: 'json',
      response: { 201: AuthResponse, ...errorResponses(400, 409, 429) },
      detail: {
        summary: 'Create a customer account (and start a session)',
        description: 'Always creates a `customer`; a `role` field in the body is ignored.',
      },
    },
  )
  .post(
    '/login',
    async ({ body, jwt, request, server }) => {
      const user = await verifyCredentials(body.email, body.password)
      return signedIn(jwt, user, await startSession(user.id, deviceOf(request, server)))
    },
    {
      rateLimit: 'login',
      body: LoginBody,
      parse: 'json',
      response: { 200: AuthResponse, ...errorResponses(400, 401, 429) },
      detail: { summary: 'Start a session: exchange email and password for an access and a refresh token' },
    },
  )
  .post(
    '/refresh',
    async ({ body, jwt, request, server }) => {
      const rotated = await rotateRefreshToken(body.refresh_token, deviceOf(request, server))
      const user = await findUser(rotated.userId)
      if (!user) throw unauthorized('Invalid, expired or revoked refresh token')
      return signedIn(jwt, user, rotated)
    },
    {
      rateLimit: 'refresh',
      body: RefreshBody,
      parse: 'json',
      response: { 200: AuthResponse, ...errorResponses(400, 401, 429) },
      detail: {
        summary: 'Exchange a refresh token for new tokens (rotation)',
        description:
          'The refresh token presented is spent and a new one is returned with a new access token. ' +
          'Presenting a spent refresh token again revokes the whole session (reuse detection), so a ' +
          'client must not refresh twice in parallel with one token.',
      },
    },
  )
  .post(
    '/logout',
    async ({ principal, set }) => {
      await revokeSession(principal.id, principal.sessionId)
      set.status = 204
    },
    {
      auth: true,
      response: { 204: emptyResponse('Done'), ...errorResponses(401) },
      detail: { summary: 'End this session: its refresh and access tokens stop working' },
    },
  )
  .post(
    '/logout-all',
    async ({ principal, set }) => {
      await revokeUserSessions(principal.id)
      set.status = 204
    },
    {
      auth: true,
      response: { 204: emptyResponse('Done'), ...errorResponses(401) },
      detail: { summary: 'End every session of the signed-in user, this one included' },
    },
  )
  .get('/sessions', async ({ principal }) => ({ data: await listSessions(principal.id, principal.sessionId) }), {
    auth: true,
    response: { 200: SessionList, ...errorResponses(401) },
    detail: { summary: 'The signed-in user’s live sessions, newest first' },
  })
  .delete(
    '/sessions/:id',
    async ({ params, principal, set }) => {
      if (!(await revokeSession(principal.id, params.id))) throw notFound(`Session ${params.id} not found`)
      set.status = 204
    },
    {
      auth: true,
      params: IdParams,
      response: { 204: emptyResponse('Done'), ...errorResponses(400, 401, 404) },
      detail: { summary: 'End one of the signed-in user’s sessions' },
    },
  )
  .post(
    '/password',
    async ({ body, principal, set }) => {
      await changePassword(principal.id, principal.sessionId, body.current_password, body.new_password)
      set.status = 204
    },
    {
      auth: true,
      rateLimit: 'login',
      body: PasswordChange,
      parse: 'json',
      response: { 204: emptyResponse('Done'), ...errorResponses(400, 401, 429) },
      detail: {
        summary: 'Change the password; every other session of the user ends',
        description: 'A wrong `current_password` is a 400. It counts against the login rate limit.',
      },
    },
  )
  .get(
    '/me',
    async ({ principal }) => {
      const user = await findUser(principal.id)
      if (!user) throw unauthorized('The account of this token no longer exists')
      return { user }
    },
    {
      auth: true,
      response: { 200: MeResponse, ...errorResponses(401) },
      detail: { summary: 'The signed-in user' },
    },
  )
