import { describe, expect, test } from 'bun:test'
import { SignJWT } from 'jose'
import { call, countRows, expectError, registerCustomer, sql, uniqueEmail } from './helpers'

const secret = new TextEncoder().encode(process.env.JWT_SECRET!)
const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

/** A customer token made by hand, so each case can bend one thing: algorithm, key, subject or times. */
function signToken({
  sub = '1',
  sid,
  alg = 'HS256',
  key = secret,
  issuedAt,
  expires = '1h',
}: {
  sub?: string
  sid?: number
  alg?: string
  key?: Uint8Array
  issuedAt?: number
  expires?: string | number
}) {
  const token = new SignJWT({ role: 'customer', ...(sid === undefined ? {} : { sid }) })
    .setProtectedHeader({ alg })
    .setSubject(sub)
    .setExpirationTime(expires)
  return (issuedAt === undefined ? token : token.setIssuedAt(issuedAt)).sign(key)
}
const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())
const bearer = async (token: Promise<string>) => ({ authorization: `Bearer ${await token}` })

describe('POST /api/auth/register', () => {
  test('creates a customer with a trimmed, lower-cased email and returns a working token', async () => {
    const email = uniqueEmail('Mixed.Case')
    const reply = await call('POST', '/api/auth/register', {
      body: { email: `  ${email.toUpperCase()} `, password: 'password123' },
    })
    expect(reply.status).toBe(201)
    expect(reply.body.user).toEqual({
      id: expect.any(Number),
      email: email.toLowerCase(),
      role: 'customer',
      created_at: expect.any(String),
    })
    expect(new Date(reply.body.user.created_at).toISOString()).toBe(reply.body.user.created_at)
    expect(reply.body.user).not.toHaveProperty('password_hash')
    const me = await call('GET', '/api/auth/me', { token: reply.body.token })
    expect(me.body.user.id).toBe(reply.body.user.id)
  })

  test('stores only a slow hash of the password', async () => {
    const { user } = await registerCustomer()
    const [row] = await sql`SELECT password_hash FROM users WHERE id = ${user.id}`
    expect(row!.password_hash).toStartWith('$argon2id$')
    expect(row!.password_hash).not.toContain('password123')
  })

  test('a role in the body never yields an admin', async () => {
    const reply = await call('POST', '/api/auth/register', {
      body: { email: uniqueEmail(), password: 'password123', role: 'admin' },
    })
    expect(reply.status).toBe(201)
    expect(reply.body.user.role).toBe('customer')
  })

  test('an email registered in another case is a 409 and adds no row', async () => {
    const email = uniqueEmail('dup')
    expect((await call('POST', '/api/auth/register', { body: { email, password: 'password123' } })).status).toBe(201)
    const before = await countRows('users')
    expectError(
      await call('POST', '/api/auth/register', { body: { email: email.toUpperCase(), password: 'password456' } }),
      409,
      /already registered/,
    )
    expect(await countRows('users')).toBe(before)
  })

  test.each([
    ['invalid email', { email: 'not-an-email', password: 'password123' }],
    ['email without domain dot', { email: 'a@b', password: 'password123' }],
    ['password of 7 characters', { email: 'short@example.com', password: '1234567' }],
    ['password of 129 characters', { email: 'long@example.com', password: 'x'.repeat(129) }],
    ['missing password', { email: 'missing@example.com' }],
    ['missing email', { password: 'password123' }],
    ['numeric password', { email: 'num@example.com', password: 12345678 }],
  ])('%s → 400 and no user', async (_case, body) => {
    const before = await countRows('users')
    expectError(await call('POST', '/api/auth/register', { body }), 400)
    expect(await countRows('users')).toBe(before)
  })

  test('passwords of exactly 8 and 128 characters are accepted', async () => {
    for (const password of ['12345678', 'y'.repeat(128)])
      expect((await call('POST', '/api/auth/register', { body: { email: uniqueEmail(), password } })).status).toBe(201)
  })
})

describe('POST /api/auth/login', () => {
  test('returns a token and the user for the right password, whatever the email case', async () => {
    const { user } = await registerCustomer()
    const reply = await call('POST', '/api/auth/login', {
      body: { email: ` ${user.email.toUpperCase()}`, password: 'password123' },
    })
    expect(reply.status).toBe(200)
    expect(reply.body.user).toEqual(user)
    expect(reply.body.token).toBeString()
  })

  test('an unknown email and a wrong password get the same 401', async () => {
    const { user } = await registerCustomer()
    const wrong = await call('POST', '/api/auth/login', { body: { email: user.email, password: 'wrong-password' } })
    const unknown = await call('POST', '/api/auth/login', {
      body: { email: uniqueEmail('nobody'), password: 'password123' },
    })
    expectError(wrong, 401)
    expectError(unknown, 401)
    expect(wrong.body.error).toBe(unknown.body.error)
  })

  test('a body without a password is a 400', async () => {
    expectError(await call('POST', '/api/auth/login', { body: { email: 'x@example.com' } }), 400)
  })
})

describe('GET /api/auth/me and bearer tokens', () => {
  test('returns the signed-in user', async () => {
    const { token, user } = await registerCustomer()
    const reply = await call('GET', '/api/auth/me', { token })
    expect(reply.status).toBe(200)
    expect(reply.body).toEqual({ user })
  })

  test('the token carries sub, role, its session, a unique id and an expiry JWT_EXPIRES_IN (15 min) out', async () => {
    const { token, user } = await registerCustomer()
    const payload = claimsOf(token)
    expect(payload.sub).toBe(String(user.id))
    expect(payload.role).toBe('customer')
    expect(payload.sid).toBeInteger()
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/)
    expect(payload.exp - payload.iat).toBe(900)
    expect(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()).alg).toBe('HS256')
  })

  const forged: [string, () => Promise<Record<string, string>>][] = [
    ['no Authorization header', async () => ({})],
    ['a scheme other than Bearer', async () => ({ authorization: 'Basic dXNlcjpwYXNz' })],
    ['an empty bearer token', async () => ({ authorization: 'Bearer ' })],
    ['garbage', async () => ({ authorization: 'Bearer not.a.jwt' })],
    [
      'alg none',
      async () => {
        const { user } = await registerCustomer()
        return {
          authorization: `Bearer ${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ sub: String(user.id), role: 'admin', exp: 9_999_999_999 })}.`,
        }
      },
    ],
    [
      'a wrong signature',
      () => bearer(signToken({ key: new TextEncoder().encode('another-secret-another-secret-0000') })),
    ],
    ['an expired token', () => bearer(signToken({ issuedAt: 1_600_000_000, expires: 1_600_000_060 }))],
    [
      'a payload edited to admin',
      async () => {
        const { token } = await registerCustomer()
        const [header, payload, signature] = token.split('.')
        const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString())
        return { authorization: `Bearer ${header}.${base64url({ ...claims, role: 'admin' })}.${signature}` }
      },
    ],
    ['HS512 with the right secret (only HS256 is accepted)', () => bearer(signToken({ alg: 'HS512' }))],
    ['a token without a numeric subject', () => bearer(signToken({ sub: 'abc' }))],
  ]
  test.each(forged)('%s → 401', async (_case, makeHeaders) => {
    const headers = await makeHeaders()
    expectError(await call('GET', '/api/auth/me', { headers }), 401)
    expectError(await call('GET', '/api/orders/me', { headers }), 401)
  })

  test('a token that worked stops working when it expires (verified tokens are remembered only until exp)', async () => {
    const registered = await registerCustomer('expiring')
    const expiresAt = Math.floor(Date.now() / 1000) + 2
    const token = await signToken({
      sub: String(registered.user.id),
      sid: claimsOf(registered.token).sid,
      expires: expiresAt,
    })
    expect((await call('GET', '/api/auth/me', { token })).status).toBe(200)
    await Bun.sleep(expiresAt * 1000 - Date.now() + 50)
    expectError(await call('GET', '/api/auth/me', { token }), 401)
  })

  test('a well-signed token of a user that does not exist → 401 on /me', async () => {
    const { token: real } = await registerCustomer()
    const token = await signToken({ sub: '2147483000', sid: claimsOf(real).sid })
    expectError(await call('GET', '/api/auth/me', { token }), 401)
  })

  test('a well-signed token without a session, or naming another user’s session → 401', async () => {
    const owner = await registerCustomer()
    const other = await registerCustomer()
    expect(
      (
        await call('GET', '/api/auth/me', {
          token: await signToken({ sub: String(owner.user.id), sid: claimsOf(owner.token).sid }),
        })
      ).status,
    ).toBe(200)
    expectError(await call('GET', '/api/auth/me', { token: await signToken({ sub: String(owner.user.id) }) }), 401)
    const borrowed = await signToken({ sub: String(other.user.id), sid: claimsOf(owner.token).sid })
    expectError(await call('GET', '/api/auth/me', { token: borrowed }), 401)
  })
})
