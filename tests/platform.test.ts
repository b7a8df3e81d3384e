import { describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseConfig } from '../src/config'
import { describeFailure } from '../src/lib/error-handler'
import { call, expectError, sql, uniqueEmail } from './helpers'

describe('health', () => {
  test('/health answers ok without touching anything', async () => {
    const reply = await call('GET', '/health')
    expect(reply.status).toBe(200)
    expect(reply.body).toEqual({ status: 'ok' })
  })

  test('/health/ready reports Postgres', async () => {
    const reply = await call('GET', '/health/ready')
    expect(reply.status).toBe(200)
    expect(reply.body.status).toBe('ok')
    expect(reply.body.checks.postgres).toEqual({ status: 'ok' })
  })
})

describe('OpenAPI', () => {
  test('Swagger UI is served at /swagger', async () => {
    const reply = await call('GET', '/swagger')
    expect(reply.status).toBe(200)
    expect(reply.headers.get('content-type')).toContain('text/html')
    expect(String(reply.body)).toContain('swagger-ui')
  })

  test('/swagger/json documents every route with schemas, errors and bearer auth', async () => {
    const { status, body: doc } = await call('GET', '/swagger/json')
    expect(status).toBe(200)
    expect(doc.openapi).toStartWith('3.')
    expect(doc.components.securitySchemes.bearerAuth).toEqual({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
    const expected: [string, string, boolean][] = [
      ['/api/auth/register', 'post', false],
      ['/api/auth/login', 'post', false],
      ['/api/auth/me', 'get', true],
      ['/api/products', 'get', false],
      ['/api/products', 'post', true],
      ['/api/products/{id}', 'get', false],
      ['/api/products/{id}', 'put', true],
      ['/api/products/{id}', 'delete', true],
      ['/api/orders', 'post', true],
      ['/api/orders', 'get', true],
      ['/api/orders/me', 'get', true],
      ['/api/orders/{id}', 'get', true],
      ['/health', 'get', false],
      ['/health/ready', 'get', false],
    ]
    for (const [path, method, secured] of expected) {
      const operation = doc.paths[path]?.[method]
      expect({ path, method, found: Boolean(operation) }).toEqual({ path, method, found: true })
      expect(operation.summary).toBeString()
      expect(operation.tags?.length).toBeGreaterThan(0)
      expect(Object.keys(operation.responses).length).toBeGreaterThan(0)
      expect(Boolean(operation.security?.some((scheme: object) => 'bearerAuth' in scheme))).toBe(secured)
      if (['post', 'put'].includes(method))
        expect(operation.requestBody.content['application/json'].schema.type).toBe('object')
      if (secured)
        expect(operation.responses['401'].content['application/json'].schema.properties.error.type).toBe('string')
    }
    const orderSchema = doc.paths['/api/orders'].post.responses['201'].content['application/json'].schema
    expect(orderSchema.required).toEqual(expect.arrayContaining(['id', 'user_id', 'status', 'total_cents', 'items']))
  })
})

describe('every failure is a JSON {error}', () => {
  test('unknown route → 404', async () => {
    expectError(await call('GET', '/api/nothing-here'), 404)
    expectError(await call('DELETE', '/api/orders/me/everything'), 404)
  })

  test('malformed JSON → 400', async () => {
    expectError(
      await call('POST', '/api/auth/register', {
        rawBody: '{"email": ',
        headers: { 'content-type': 'application/json' },
      }),
      400,
    )
  })

  test('database failures map to contract codes without SQL text', async () => {
    const email = uniqueEmail('twice')
    const insert = () => sql`INSERT INTO users (email, password_hash) VALUES (${email}, 'x')`
    await insert()
    const duplicate = await insert().catch((error: unknown) => error)
    expect(describeFailure('UNKNOWN', duplicate)).toEqual({ status: 409, error: 'Duplicate value' })
    const negative = await sql`INSERT INTO products (name, price_cents) VALUES ('x', -1)`.catch(
      (error: unknown) => error,
    )
    expect(describeFailure('UNKNOWN', negative)).toEqual({ status: 400, error: 'Value violates a data rule' })
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })
    expect(describeFailure('UNKNOWN', refused)).toEqual({ status: 503, error: 'Database unavailable, try again later' })
    expect(describeFailure('UNKNOWN', new TypeError('x is undefined'))).toEqual({
      status: 500,
      error: 'Internal server error',
    })
  })
})

describe('configuration', () => {
  const valid = { JWT_SECRET: 'dev-secret' }

  test('defaults fill everything but JWT_SECRET', () => {
    const config = parseConfig(valid)
    expect(config).toMatchObject({
      PORT: 3000,
      REDIS_URL: 'redis://127.0.0.1:6379',
      JWT_EXPIRES_IN: '15m',
      REFRESH_TOKEN_TTL: '30d',
      LOG_LEVEL: 'info',
      WORKER_CONCURRENCY: 10,
    })
  })

  test.each([
    [{}, /JWT_SECRET is required/],
    [{ ...valid, PORT: 'eighty' }, /PORT is invalid/],
    [{ ...valid, PORT: '70000' }, /PORT is invalid/],
    [{ ...valid, DATABASE_URL: 'mysql://x' }, /DATABASE_URL is invalid/],
    [{ ...valid, JWT_EXPIRES_IN: 'forever' }, /JWT_EXPIRES_IN is invalid/],
    [{ ...valid, REFRESH_TOKEN_TTL: '30 parsecs' }, /REFRESH_TOKEN_TTL is invalid/],
    [{ ...valid, LOG_LEVEL: 'loud' }, /LOG_LEVEL is invalid/],
    [{ ...valid, WORKER_CONCURRENCY: '0' }, /WORKER_CONCURRENCY is invalid/],
    [{ ...valid, REDIS_CLUSTER_NODES: 'redis-1' }, /REDIS_CLUSTER_NODES is invalid/],
    [{ ...valid, REDIS_CLUSTER_NODES: 'redis-1:6379,' }, /REDIS_CLUSTER_NODES is invalid/],
    [{ ...valid, REDIS_CLUSTER_NODES: 'http://redis-1:6379' }, /REDIS_CLUSTER_NODES is invalid/],
    [
      { ...valid, REDIS_CLUSTER_NODES: 'redis-1:6379', QUEUE_PREFIX: 'shop{}' },
      /QUEUE_PREFIX has braces but no hash tag/,
    ],
    [{ NODE_ENV: 'production', JWT_SECRET: 'short' }, /at least 32 characters/],
    [{ NODE_ENV: 'production', JWT_SECRET: 'dev-secret-change-me-in-production-0000' }, /placeholder/],
  ])('%o is refused with one line naming the variable', (env, message) => {
    expect(() => parseConfig(env)).toThrow(message)
  })

  test('on a Redis Cluster the queue prefix is hash-tagged (one slot for all its keys); a tag already there is kept', () => {
    const cluster = { ...valid, REDIS_CLUSTER_NODES: 'redis-1:6379,10.0.0.2:7000' }
    expect(parseConfig(valid).QUEUE_PREFIX).toBe('order-api')
    expect(parseConfig(cluster).QUEUE_PREFIX).toBe('{order-api}')
    expect(parseConfig({ ...cluster, QUEUE_PREFIX: 'shop:{orders}' }).QUEUE_PREFIX).toBe('shop:{orders}')
    expect(parseConfig({ ...cluster, QUEUE_PREFIX: 'eu' }).QUEUE_PREFIX).toBe('{eu}')
    const withCredentials = 'rediss://app:s%40cret@redis-1:6379,redis-2:6379,[::1]:7000'
    expect(parseConfig({ ...valid, REDIS_CLUSTER_NODES: withCredentials }).REDIS_CLUSTER_NODES).toBe(withCredentials)
  })

  test('a secret can come from a file (NAME_FILE, as Docker and Swarm mount secrets), not from both', () => {
    const folder = mkdtempSync(join(tmpdir(), 'secrets-'))
    try {
      writeFileSync(join(folder, 'jwt'), 'a-secret-from-a-file-0123456789abcdef\n')
      writeFileSync(join(folder, 'admin'), 'admin password\n')
      const config = parseConfig({
        NODE_ENV: 'production',
        JWT_SECRET_FILE: join(folder, 'jwt'),
        ADMIN_PASSWORD_FILE: join(folder, 'admin'),
      })
      expect(config.JWT_SECRET).toBe('a-secret-from-a-file-0123456789abcdef')
      expect(config.ADMIN_PASSWORD).toBe('admin password')
      expect(() => parseConfig({ JWT_SECRET: 'x', JWT_SECRET_FILE: join(folder, 'jwt') })).toThrow(
        /set JWT_SECRET or JWT_SECRET_FILE, not both/,
      )
      expect(() => parseConfig({ JWT_SECRET_FILE: join(folder, 'missing') })).toThrow(
        /JWT_SECRET_FILE cannot be read \(ENOENT\)/,
      )
      // What the file holds is checked like the variable itself.
      writeFileSync(join(folder, 'short'), 'short')
      expect(() => parseConfig({ NODE_ENV: 'production', JWT_SECRET_FILE: join(folder, 'short') })).toThrow(
        /at least 32 characters/,
      )
    } finally {
      rmSync(folder, { recursive: true, force: true })
    }
  })

  test('the .env.example secret is refused in production', async () => {
    const example = await Bun.file(new URL('../.env.example', import.meta.url)).text()
    const secret = example.match(/^JWT_SECRET=(.*)$/m)![1]!
    expect(() => parseConfig({ NODE_ENV: 'production', JWT_SECRET: secret })).toThrow(/placeholder|32 characters/)
  })

  test('a missing JWT_SECRET stops the API at start-up with one clear line', async () => {
    // Run from an empty folder so that no .env file supplies the secret.
    const child = Bun.spawn(['bun', new URL('../src/server.ts', import.meta.url).pathname], {
      cwd: mkdtempSync(join(tmpdir(), 'no-env-')),
      env: {
        PATH: process.env.PATH!,
        HOME: process.env.HOME ?? '/tmp',
        PORT: '0',
        DATABASE_URL: process.env.DATABASE_URL!,
      },
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const code = await child.exited
    const stderr = await new Response(child.stderr).text()
    expect(code).toBe(1)
    expect(stderr.trim()).toBe('Configuration error: JWT_SECRET is required')
  })
})
