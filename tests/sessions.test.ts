import { afterAll, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { setRole, upsertUser } from '../src/modules/auth/service'
import { deleteSpentRefreshTokens } from '../src/modules/auth/sessions'
import { call, expectError, registerCustomer, sql, uniqueEmail } from './helpers'
import { startApi, stopServices } from './processes'
import { tcpProxy } from './tcp-proxy'

afterAll(stopServices)

type SignedIn = { token: string; refresh_token: string; expires_in: number; user: { id: number; email: string } }

const PASSWORD = 'password123'
const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())

async function login(email: string, password = PASSWORD, userAgent = 'session-tests') {
  const reply = await call<SignedIn>('POST', '/api/auth/login', {
    body: { email, password },
    headers: { 'user-agent': userAgent },
  })
  expect(reply.status).toBe(200)
  return reply.body
}

/** A customer with two sessions (two devices). */
async function customerWithTwoSessions() {
  const email = uniqueEmail('sessions')
  const registered = await call<SignedIn>('POST', '/api/auth/register', {
    body: { email, password: PASSWORD },
    headers: { 'user-agent': 'phone' },
  })
  expect(registered.status).toBe(201)
  return { email, phone: registered.body, laptop: await login(email, PASSWORD, 'laptop') }
}

const refresh = (refreshToken: string) =>
  call<SignedIn>('POST', '/api/auth/refresh', { body: { refresh_token: refreshToken } })
const me = (token: string) => call('GET', '/api/auth/me', { token })

async function expectEnded(session: { token: string; refresh_token: string }) {
  expectError(await me(session.token), 401)
  expectError(await call('GET', '/api/orders/me', { token: session.token }), 401)
  expectError(await refresh(session.refresh_token), 401)
}

async function expectAlive(session: { token: string }) {
  expect((await me(session.token)).status).toBe(200)
}

describe('register and login start a session', () => {
  test('they answer an access token naming the session, a refresh token and expires_in', async () => {
    const { phone, laptop } = await customerWithTwoSessions()
    for (const signedIn of [phone, laptop]) {
      expect(Object.keys(signedIn).sort()).toEqual(['expires_in', 'refresh_token', 'token', 'user'])
      expect(signedIn.expires_in).toBe(900)
      expect(signedIn.refresh_token).toMatch(/^[A-Za-z0-9_-]{43}$/)
      const claims = claimsOf(signedIn.token)
      expect(claims.exp - claims.iat).toBe(signedIn.expires_in)
    }
    expect(claimsOf(phone.token).sid).not.toBe(claimsOf(laptop.token).sid)
    expect(claimsOf(phone.token).jti).not.toBe(claimsOf(laptop.token).jti)
  })

  test('only a SHA-256 hash of the refresh token is stored', async () => {
    const { phone } = await customerWithTwoSessions()
    const rows = await sql`SELECT token_hash FROM refresh_tokens WHERE session_id = ${claimsOf(phone.token).sid}`
    expect(rows.map((row) => row.token_hash)).toEqual([createHash('sha256').update(phone.refresh_token).digest('hex')])
    const [stored] =
      await sql`SELECT row_to_json(s)::text AS text FROM sessions s WHERE id = ${claimsOf(phone.token).sid}`
    expect(stored!.text).not.toContain(phone.refresh_token)
  })
})

describe('POST /api/auth/refresh', () => {
  test('rotates: new tokens for the same session, and the old refresh token is spent', async () => {
    const { phone } = await customerWithTwoSessions()
    const rotated = await refresh(phone.refresh_token)
    expect(rotated.status).toBe(200)
    expect(rotated.body.user).toEqual(phone.user)
    expect(rotated.body.expires_in).toBe(900)
    expect(rotated.body.refresh_token).not.toBe(phone.refresh_token)
    expect(rotated.body.token).not.toBe(phone.token)
    expect(claimsOf(rotated.body.token).sid).toBe(claimsOf(phone.token).sid)
    await expectAlive(rotated.body)
    // The next rotation works from the new token.
    const again = await refresh(rotated.body.refresh_token)
    expect(again.status).toBe(200)
    await expectAlive(again.body)
  })

  test('a spent refresh token presented again is a 401 and revokes the whole session', async () => {
    const { phone, laptop } = await customerWithTwoSessions()
    const rotated = (await refresh(phone.refresh_token)).body
    await expectAlive(rotated)
    expectError(await refresh(phone.refresh_token), 401, /already used/)
    // The newest refresh token and every access token of the session stop working...
    await expectEnded(rotated)
    await expectEnded(phone)
    // ...the user's other session does not.
    await expectAlive(laptop)
    expect((await refresh(laptop.refresh_token)).status).toBe(200)
  })

  test('20 concurrent refreshes with one token: exactly one 200, the others 401, no 5xx', async () => {
    const { phone } = await customerWithTwoSessions()
    const replies = await Promise.all(Array.from({ length: 20 }, () => refresh(phone.refresh_token)))
    const statuses = replies.map((reply) => reply.status)
    expect(statuses.filter((status) => status === 200)).toHaveLength(1)
    expect(statuses.filter((status) => status === 401)).toHaveLength(19)
    const [issued] = await sql`
      SELECT count(*)::int AS tokens, count(*) FILTER (WHERE spent_at IS NULL)::int AS unspent
      FROM refresh_tokens WHERE session_id = ${claimsOf(phone.token).sid}`
    // One rotation happened: the first token and the winner's.
    expect(issued!.tokens).toBe(2)
    // The losers presented a spent token, which is reuse: the session is revoked, winner included.
    const winner = replies.find((reply) => reply.status === 200)!.body
    await expectEnded(winner)
  })

  test('unknown, malformed, expired and revoked refresh tokens are 401; a missing one is 400', async () => {
    const { phone, laptop } = await customerWithTwoSessions()
    expectError(await refresh('A'.repeat(43)), 401)
    expectError(await refresh('not a token'), 401)
    expectError(await refresh(''), 401)
    expectError(await call('POST', '/api/auth/refresh', { body: {} }), 400)
    expectError(await call('POST', '/api/auth/refresh', { body: { refresh_token: 42 } }), 400)

    await sql`UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = ${claimsOf(phone.token).sid}`
    expectError(await refresh(phone.refresh_token), 401, /expired/)
    // An expired session is not listed either.
    const listed = await call('GET', '/api/auth/sessions', { token: laptop.token })
    expect(listed.body.data.map((session: { id: number }) => session.id)).toEqual([claimsOf(laptop.token).sid])

    expect((await call('POST', '/api/auth/logout', { token: laptop.token })).status).toBe(204)
    expectError(await refresh(laptop.refresh_token), 401)
  })
})

describe('logout and logout-all', () => {
  test('logout ends the caller’s session only', async () => {
    const { phone, laptop } = await customerWithTwoSessions()
    await expectAlive(phone) // remembered by this process before the logout
    const reply = await call('POST', '/api/auth/logout', { token: phone.token })
    expect(reply.status).toBe(204)
    expect(reply.body).toBeUndefined()
    await expectEnded(phone)
    await expectAlive(laptop)
    expect((await refresh(laptop.refresh_token)).status).toBe(200)
  })

  test('logout-all ends every session of the user, and no one else’s', async () => {
    const { email, phone, laptop } = await customerWithTwoSessions()
    const tablet = await login(email, PASSWORD, 'tablet')
    const stranger = await registerCustomer()
    await Promise.all([phone, laptop, tablet].map(expectAlive))
    expect((await call('POST', '/api/auth/logout-all', { token: laptop.token })).status).toBe(204)
    for (const session of [phone, laptop, tablet]) await expectEnded(session)
    await expectAlive(stranger)
    // Signing in again starts a new session.
    await expectAlive(await login(email))
  })

  test('without a token both are 401', async () => {
    expectError(await call('POST', '/api/auth/logout'), 401)
    expectError(await call('POST', '/api/auth/logout-all'), 401)
  })
})

describe('GET /api/auth/sessions and DELETE /api/auth/sessions/:id', () => {
  test('lists the caller’s live sessions, newest first, with the current one flagged', async () => {
    const { phone, laptop } = await customerWithTwoSessions()
    const stranger = await registerCustomer()
    const reply = await call('GET', '/api/auth/sessions', {
      token: phone.token,
    })
    expect(reply.status).toBe(200)
    expect(reply.body.data).toEqual([
      {
        id: claimsOf(laptop.token).sid,
        created_at: expect.any(String),
        last_used_at: expect.any(String),
        expires_at: expect.any(String),
        user_agent: 'laptop',
        ip: expect.any(String),
        current: false,
      },
      {
        id: claimsOf(phone.token).sid,
        created_at: expect.any(String),
        last_used_at: expect.any(String),
        expires_at: expect.any(String),
        user_agent: 'phone',
        ip: expect.any(String),
        current: true,
      },
    ])
    const [newest] = reply.body.data
    const days = (Date.parse(newest.expires_at) - Date.parse(newest.created_at)) / 86_400_000
    expect(Math.round(days)).toBe(30)
    expect(reply.body.data.map((s: { id: number }) => s.id)).not.toContain(claimsOf(stranger.token).sid)
    const fromLaptop = await call('GET', '/api/auth/sessions', { token: laptop.token })
    expect(fromLaptop.body.data.map((s: { current: boolean }) => s.current)).toEqual([true, false])
  })

  test('revokes one of the caller’s own sessions; someone else’s or an unknown one is a 404', async () => {
    const { phone, laptop } = await customerWithTwoSessions()
    const stranger = await registerCustomer()
    const strangerSession = claimsOf(stranger.token).sid
    expectError(await call('DELETE', `/api/auth/sessions/${strangerSession}`, { token: phone.token }), 404)
    await expectAlive(stranger)
    expectError(await call('DELETE', '/api/auth/sessions/2147483647', { token: phone.token }), 404)
    expectError(await call('DELETE', '/api/auth/sessions/abc', { token: phone.token }), 400)

    const laptopSession = claimsOf(laptop.token).sid
    expect((await call('DELETE', `/api/auth/sessions/${laptopSession}`, { token: phone.token })).status).toBe(204)
    await expectEnded(laptop)
    await expectAlive(phone)
    // Already revoked: gone from the list, and a second DELETE is a 404.
    expectError(await call('DELETE', `/api/auth/sessions/${laptopSession}`, { token: phone.token }), 404)
    const listed = await call('GET', '/api/auth/sessions', { token: phone.token })
    expect(listed.body.data.map((s: { id: number }) => s.id)).toEqual([claimsOf(phone.token).sid])
  })
})

describe('POST /api/auth/password', () => {
  test('changes the password, ends the other sessions and keeps the current one', async () => {
    const { email, phone, laptop } = await customerWithTwoSessions()
    const reply = await call('POST', '/api/auth/password', {
      token: phone.token,
      body: { current_password: PASSWORD, new_password: 'a-new-password' },
    })
    expect(reply.status).toBe(204)
    await expectEnded(laptop)
    await expectAlive(phone)
    expect((await refresh(phone.refresh_token)).status).toBe(200)
    expectError(await call('POST', '/api/auth/login', { body: { email, password: PASSWORD } }), 401)
    await expectAlive(await login(email, 'a-new-password'))
  })

  test('of concurrent changes with the right current password exactly one succeeds, and its password is the one that works', async () => {
    const { email, phone } = await customerWithTwoSessions()
    const candidates = Array.from({ length: 5 }, (_, i) => `concurrent-new-password-${i}`)
    const replies = await Promise.all(
      candidates.map((next) =>
        call('POST', '/api/auth/password', {
          token: phone.token,
          body: { current_password: PASSWORD, new_password: next },
        }),
      ),
    )
    const winners = candidates.filter((_, i) => replies[i]!.status === 204)
    expect(winners.length).toBe(1)
    for (const reply of replies.filter((reply) => reply.status !== 204))
      expectError(reply, 400, 'The current password is not correct')
    const works = await Promise.all(
      candidates.map(async (password) => (await call('POST', '/api/auth/login', { body: { email, password } })).status),
    )
    expect(works).toEqual(candidates.map((password) => (password === winners[0] ? 200 : 401)))
  })

  test('a wrong current password or a bad new one is a 400 and changes nothing', async () => {
    const { email, phone, laptop } = await customerWithTwoSessions()
    const [before] = await sql`SELECT password_hash FROM users WHERE id = ${phone.user.id}`
    const attempts = [
      { current_password: 'wrong-password', new_password: 'a-new-password' },
      { current_password: PASSWORD, new_password: 'short' },
      { current_password: PASSWORD, new_password: 'x'.repeat(129) },
      { current_password: PASSWORD },
    ]
    for (const body of attempts)
      expectError(await call('POST', '/api/auth/password', { token: phone.token, body }), 400)
    const [after] = await sql`SELECT password_hash FROM users WHERE id = ${phone.user.id}`
    expect(after!.password_hash).toBe(before!.password_hash)
    await expectAlive(laptop)
    await login(email)
    expectError(
      await call('POST', '/api/auth/password', {
        body: { current_password: PASSWORD, new_password: 'a-new-password' },
      }),
      401,
    )
  })
})

test('a role change (user:role) ends all the user’s sessions', async () => {
  const { email, phone, laptop } = await customerWithTwoSessions()
  await Promise.all([phone, laptop].map(expectAlive))
  await setRole(email, 'admin')
  await expectEnded(phone)
  await expectEnded(laptop)
  const again = await login(email)
  expect(again.user).toMatchObject({ role: 'admin' })
  expect((await call('GET', '/api/orders', { token: again.token })).status).toBe(200)
})

test('db:seed’s upsert ends the account’s sessions when it changes the password, not when it changes nothing', async () => {
  const { email, phone } = await customerWithTwoSessions()
  await upsertUser(email, PASSWORD, 'customer')
  await expectAlive(phone)
  await upsertUser(email, 'a-seeded-password', 'customer')
  await expectEnded(phone)
  await expectAlive(await login(email, 'a-seeded-password'))
})

test('spent refresh tokens are kept for SPENT_REFRESH_TOKEN_RETENTION (reuse detection), then deleted', async () => {
  const email = uniqueEmail('spent')
  const first = (await call<SignedIn>('POST', '/api/auth/register', { body: { email, password: PASSWORD } })).body
  const second = (await refresh(first.refresh_token)).body
  const third = (await refresh(second.refresh_token)).body
  const hash = (token: string) => createHash('sha256').update(token).digest('hex')
  // The first token was spent longer ago than the retention (7 days by default), the second just now.
  await sql`UPDATE refresh_tokens SET spent_at = now() - interval '8 days' WHERE token_hash = ${hash(first.refresh_token)}`
  expect(await deleteSpentRefreshTokens()).toBeGreaterThanOrEqual(1)
  const left = await sql<{ token_hash: string }[]>`
    SELECT token_hash FROM refresh_tokens WHERE token_hash IN ${sql([first, second, third].map((s) => hash(s.refresh_token)))}`
  expect(new Set(left.map((row) => row.token_hash))).toEqual(
    new Set([hash(second.refresh_token), hash(third.refresh_token)]),
  )
  // Forgotten: merely unknown, the session lives on.
  expectError(await refresh(first.refresh_token), 401, /Invalid/)
  expect((await me(third.token)).status).toBe(200)
  // Within the retention a replay is still caught, and ends the session.
  expectError(await refresh(second.refresh_token), 401, /already used/)
  await expectEnded(third)
})

describe('across API processes', () => {
  const prefix = `sessions-${process.pid}`
  let replicas: { base: string; lines: string[] }[] = []
  const replica = (index: number) => replicas[index]!
  const post = (base: string, path: string, init: { token?: string; body?: unknown } = {}) =>
    fetch(`${base}${path}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
      },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    })
  const meAt = (base: string, token: string) =>
    fetch(`${base}/api/auth/me`, { headers: { authorization: `Bearer ${token}` } }).then((response) => response.status)

  test('a session revoked on one replica is refused by another within 1 s', async () => {
    replicas = await Promise.all([
      startApi({ QUEUE_PREFIX: prefix, LOG_LEVEL: 'debug' }, { log: true }),
      startApi({ QUEUE_PREFIX: prefix, LOG_LEVEL: 'debug' }, { log: true }),
    ])
    const [a, b] = [replica(0), replica(1)]
    for (const revoke of ['logout', 'logout-all', 'password'] as const) {
      const email = uniqueEmail('replicas')
      const registered = await post(a.base, '/api/auth/register', { body: { email, password: PASSWORD } })
      const session = (await registered.json()) as SignedIn
      const other = (await (
        await post(a.base, '/api/auth/login', { body: { email, password: PASSWORD } })
      ).json()) as SignedIn
      // B has checked (and remembers) the session before it is revoked.
      for (let i = 0; i < 3; i++) expect(await meAt(b.base, other.token)).toBe(200)
      const revoked =
        revoke === 'password'
          ? await post(a.base, '/api/auth/password', {
              token: session.token,
              body: { current_password: PASSWORD, new_password: 'another-password' },
            })
          : await post(a.base, `/api/auth/${revoke}`, { token: other.token })
      expect(revoked.status).toBe(204)
      const revokedAt = performance.now()
      // At once on the replica that revoked it...
      expect(await meAt(a.base, other.token)).toBe(401)
      // ...and within a second on the other one.
      let status = await meAt(b.base, other.token)
      while (status === 200 && performance.now() - revokedAt < 1_500) {
        await Bun.sleep(20)
        status = await meAt(b.base, other.token)
      }
      const elapsedMs = performance.now() - revokedAt
      expect({ revoke, status, withinOneSecond: elapsedMs < 1_000 }).toEqual({
        revoke,
        status: 401,
        withinOneSecond: true,
      })
      expect((await post(b.base, '/api/auth/refresh', { body: { refresh_token: other.refresh_token } })).status).toBe(
        401,
      )
    }
  })

  test('a replica cut off from Redis when it revokes a session sends the news once it is back: no replica trusts the session 5 s', async () => {
    const prefix = `sessions-partition-${process.pid}`
    const redisPort = Number(new URL(process.env.REDIS_URL!).port || 6379)
    const proxy = tcpProxy(redisPort)
    try {
      const [a, b] = await Promise.all([
        startApi({ QUEUE_PREFIX: prefix, REDIS_URL: `redis://127.0.0.1:${proxy.port}` }),
        startApi({ QUEUE_PREFIX: prefix }),
      ])
      const email = uniqueEmail('partition')
      await post(a.base, '/api/auth/register', { body: { email, password: PASSWORD } })
      const other = (await (
        await post(a.base, '/api/auth/login', { body: { email, password: PASSWORD } })
      ).json()) as SignedIn
      proxy.cut()
      await Bun.sleep(200)
      // B remembers the session from now on (for at most 5 s)...
      expect(await meAt(b.base, other.token)).toBe(200)
      const rememberedAt = performance.now()
      // ...when A, which cannot reach Redis, ends it.
      expect((await post(a.base, '/api/auth/logout', { token: other.token })).status).toBe(204)
      proxy.heal()
      let status = await meAt(b.base, other.token)
      while (status === 200 && performance.now() - rememberedAt < 6_000) {
        await Bun.sleep(20)
        status = await meAt(b.base, other.token)
      }
      // The retried broadcast arrives well before B would forget the session on its own.
      const elapsedMs = performance.now() - rememberedAt
      expect({ status, beforeTheCacheExpires: elapsedMs < 4_000 }).toEqual({ status: 401, beforeTheCacheExpires: true })
    } finally {
      proxy.cut()
    }
  })

  test('a remembered session ended with no message (a script, a lost broadcast) is refused within 5 s', async () => {
    const b = replica(1)
    const email = uniqueEmail('quiet')
    const signedIn = (await (
      await post(b.base, '/api/auth/register', { body: { email, password: PASSWORD } })
    ).json()) as SignedIn
    expect(await meAt(b.base, signedIn.token)).toBe(200)
    const rememberedAt = performance.now()
    await sql`UPDATE sessions SET revoked_at = now() WHERE user_id = ${signedIn.user.id}`
    let status = await meAt(b.base, signedIn.token)
    while (status === 200 && performance.now() - rememberedAt < 8_000) {
      await Bun.sleep(50)
      status = await meAt(b.base, signedIn.token)
    }
    expect({ status, withinFiveSeconds: performance.now() - rememberedAt <= 5_300 }).toEqual({
      status: 401,
      withinFiveSeconds: true,
    })
  })

  test('no token, refresh token or password appears in any log line', async () => {
    const secrets: string[] = []
    const a = replica(0)
    const email = uniqueEmail('logs')
    const first = (await (
      await post(a.base, '/api/auth/register', { body: { email, password: PASSWORD } })
    ).json()) as SignedIn
    const rotated = (await (
      await post(a.base, '/api/auth/refresh', { body: { refresh_token: first.refresh_token } })
    ).json()) as SignedIn
    await post(a.base, '/api/auth/refresh', { body: { refresh_token: first.refresh_token } }) // reuse
    const second = (await (
      await post(a.base, '/api/auth/login', { body: { email, password: PASSWORD } })
    ).json()) as SignedIn
    await post(a.base, '/api/auth/password', {
      token: second.token,
      body: { current_password: PASSWORD, new_password: 'logged-password-2' },
    })
    await post(a.base, '/api/auth/logout', { token: second.token })
    secrets.push(
      first.token,
      first.refresh_token,
      rotated.token,
      rotated.refresh_token,
      second.token,
      second.refresh_token,
    )
    secrets.push(PASSWORD, 'logged-password-2')
    await Bun.sleep(200)
    const lines = replicas.flatMap((replica) => replica.lines)
    expect(lines.length).toBeGreaterThan(5)
    expect(lines.some((line) => line.includes('/api/auth/refresh'))).toBe(true)
    for (const secret of secrets) expect(lines.filter((line) => line.includes(secret))).toEqual([])
  })
})

test('refresh is rate limited like login, and a password change counts against the login budget', async () => {
  const { base } = await startApi({ RATE_LIMIT_AUTH_MAX: '3', QUEUE_PREFIX: `sessions-limits-${process.pid}` })
  const post = (path: string, body: unknown, token?: string) =>
    fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    })
  const refreshes = []
  for (let i = 0; i < 4; i++) refreshes.push(await post('/api/auth/refresh', { refresh_token: 'B'.repeat(43) }))
  expect(refreshes.map((response) => response.status)).toEqual([401, 401, 401, 429])
  expect(Number(refreshes[3]!.headers.get('retry-after'))).toBeGreaterThan(0)

  const email = uniqueEmail('limits')
  const { token } = (await (await post('/api/auth/register', { email, password: PASSWORD })).json()) as SignedIn
  expect((await post('/api/auth/login', { email, password: PASSWORD })).status).toBe(200)
  expect((await post('/api/auth/login', { email, password: PASSWORD })).status).toBe(200)
  const guess = { current_password: 'a-guess-123', new_password: 'a-new-password' }
  expect((await post('/api/auth/password', guess, token)).status).toBe(400)
  expect((await post('/api/auth/password', guess, token)).status).toBe(429)
  expect((await post('/api/auth/login', { email, password: PASSWORD })).status).toBe(429)
})
