import { Type as t, type Static } from '@sinclair/typebox'
import { userRole } from '../../db/schema'
import { enumOf } from '../../lib/model'

// Surrounding spaces are allowed here because the service trims the email before using it.
const Email = t.String({
  pattern: '^\\s*[^\\s@\\u0000-\\u001f]+@[^\\s@\\u0000-\\u001f]+\\.[^\\s@\\u0000-\\u001f]+\\s*$',
  maxLength: 254,
  description: 'Email address; trimmed and lower-cased',
  examples: ['ada@example.com'],
})
const Password = t.String({
  minLength: 8,
  maxLength: 128,
  description: '8 to 128 characters',
  examples: ['correct horse battery'],
})

export const Credentials = t.Object({ email: Email, password: Password })
// Login checks nothing but the match, so any too-short/too-long password simply fails as 401.
export const LoginBody = t.Object({
  email: t.String({ maxLength: 254, examples: ['ada@example.com'] }),
  password: t.String({ maxLength: 1024 }),
})

export const Role = enumOf(userRole.enumValues)
export type Role = Static<typeof Role>

export const User = t.Object(
  {
    id: t.Integer(),
    email: t.String(),
    role: Role,
    created_at: t.String({ format: 'date-time' }),
  },
  { title: 'User' },
)
export type User = Static<typeof User>

export const AuthResponse = t.Object(
  {
    token: t.String({ description: 'Access token (JWT), sent as `Authorization: Bearer <token>`' }),
    refresh_token: t.String({
      description: 'Opaque; exchange it at POST /api/auth/refresh for new tokens. Each one works once.',
    }),
    expires_in: t.Integer({ description: 'Lifetime of `token` in seconds', examples: [900] }),
    user: User,
  },
  { title: 'AuthResponse' },
)

export const RefreshBody = t.Object({ refresh_token: t.String({ maxLength: 512 }) })

export const PasswordChange = t.Object({
  current_password: t.String({ maxLength: 1024 }),
  new_password: Password,
})

export const Session = t.Object(
  {
    id: t.Integer(),
    created_at: t.String({ format: 'date-time' }),
    last_used_at: t.String({ format: 'date-time', description: 'Start or last refresh' }),
    expires_at: t.String({ format: 'date-time', description: 'When its refresh token expires' }),
    user_agent: t.Union([t.String(), t.Null()]),
    ip: t.Union([t.String(), t.Null()]),
    current: t.Boolean({ description: 'True for the session of the token used for this request' }),
  },
  { title: 'Session' },
)
export const SessionList = t.Object({ data: t.Array(Session) })
export const MeResponse = t.Object({ user: User })
