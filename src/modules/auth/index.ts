import { Elysia } from 'elysia'
import { errorResponses } from '../../lib/model'
import { rateLimit } from '../../lib/rate-limit'
import { unauthorized } from '../../lib/errors'
import { authGuard } from './guard'
import { AuthResponse, Credentials, LoginBody, MeResponse } from './model'
import { findUser, registerCustomer, verifyCredentials } from './service'

export const authRoutes = new Elysia({ prefix: '/api/auth', detail: { tags: ['Auth'] } })
  .use(authGuard)
  .use(rateLimit)
  .post(
    '/register',
    async ({ body, jwt, set }) => {
      const user = await registerCustomer(body.email, body.password)
      set.status = 201
      return { token: await jwt.sign({ sub: String(user.id), role: user.role }), user }
    },
    {
      rateLimit: 'register',
      body: Credentials,
      response: { 201: AuthResponse, ...errorResponses(400, 409, 429) },
      detail: {
        summary: 'Create a customer account',
        description: 'Always creates a `customer`; a `role` field in the body is ignored.',
      },
    },
  )
  .post(
    '/login',
    async ({ body, jwt }) => {
      const user = await verifyCredentials(body.email, body.password)
      return { token: await jwt.sign({ sub: String(user.id), role: user.role }), user }
    },
    {
      rateLimit: 'login',
      body: LoginBody,
      response: { 200: AuthResponse, ...errorResponses(400, 401, 429) },
      detail: { summary: 'Exchange email and password for a bearer token' },
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
