import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Subprocess } from 'bun'
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import { freePort, pgBin, waitFor } from './helpers'
import { tcpProxy } from './tcp-proxy'

// No Docker engine runs here, so this runs what the image and the compose file would run:
// the Dockerfile's production-only install into a copy of exactly what it COPYs, then the
// compose services' commands and health checks from that copy, against local Postgres/Redis.

const root = new URL('..', import.meta.url).pathname
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8')
const compose = Bun.YAML.parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8')) as any
const stack = Bun.YAML.parse(readFileSync(join(root, 'deploy/stack.yml'), 'utf8')) as any
const jsonArray = (text: string) => JSON.parse(text.trim()) as string[]

const runtimeStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '))
const installCommand = dockerfile.match(/^RUN (bun install .*)$/m)![1]!.split(' ')
const copied = [...runtimeStage.matchAll(/^COPY --chown=\S+ (.+) \.\/?\S*$/gm)].flatMap((match) => match[1]!.split(' '))
const healthcheck = jsonArray(dockerfile.match(/HEALTHCHECK[^\n]*\\\n\s*CMD (\[.*\])/)![1]!)
const defaultCommand = jsonArray(dockerfile.match(/^CMD (\[.*\])$/m)![1]!)

const image = mkdtempSync(join(tmpdir(), 'order-api-image-'))
const children: Subprocess[] = []
const databaseName = `${process.env.TEST_DATABASE_NAME}_container`
const databaseUrl = Object.assign(new URL(process.env.DATABASE_URL!), { pathname: `/${databaseName}` }).toString()

/** The compose environment with its ${...} resolved the way a user's .env would. */
function composeEnv(service: string, overrides: Record<string, string>) {
  const env: Record<string, string> = {}
  for (const [key, value] of Object.entries<string>(compose.services[service].environment ?? {}))
    env[key] = String(value).replace(/\$\{(\w+)(:[-?][^}]*)?\}/g, (_, name, rest) =>
      rest?.startsWith(':-') ? rest.slice(2) : `test-value-for-${name}`,
    )
  return {
    ...env,
    JWT_SECRET: 'c0ntainer-test-secret-with-more-than-32-characters',
    ADMIN_PASSWORD: 'container-admin-password',
    DATABASE_URL: databaseUrl,
    REDIS_URL: process.env.REDIS_URL!,
    QUEUE_PREFIX: `container-${process.pid}`,
    PATH: process.env.PATH!,
    HOME: image,
    ...overrides,
  }
}

function run(command: string[], env: Record<string, string>) {
  const child = Bun.spawn(command, { cwd: image, env, stdout: 'pipe', stderr: 'pipe' })
  children.push(child)
  return child
}

beforeAll(async () => {
  for (const path of copied) cpSync(join(root, path), join(image, path), { recursive: true })
  const install = Bun.spawnSync(installCommand, {
    cwd: image,
    env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? image },
  })
  expect(install.exitCode).toBe(0)
  const admin = postgres(Object.assign(new URL(process.env.DATABASE_URL!), { pathname: '/postgres' }).toString(), {
    max: 1,
    onnotice: () => {},
  })
  await admin`DROP DATABASE IF EXISTS ${admin(databaseName)} WITH (FORCE)`
  await admin.end()
})

afterAll(async () => {
  // The compose commands are `bun run …`, which start the service as a child: SIGTERM reaches
  // both (and the services stop cleanly); SIGKILL on the parent would orphan the child.
  for (const child of children) child.kill('SIGTERM')
  await Promise.race([Promise.all(children.map((child) => child.exited)), Bun.sleep(5_000)])
  for (const child of children) child.kill('SIGKILL')
  rmSync(image, { recursive: true, force: true })
})

describe('Dockerfile', () => {
  test('multi-stage on the official Bun image, production dependencies only, non-root, health-checked', () => {
    expect(dockerfile.match(/^FROM oven\/bun:\$\{BUN_VERSION\} AS \w+$/gm)?.length).toBe(2)
    expect(installCommand).toEqual(expect.arrayContaining(['--frozen-lockfile', '--production']))
    expect(runtimeStage).toMatch(/^USER bun$/m)
    expect(runtimeStage).not.toMatch(/^USER root$/m)
    expect(healthcheck).toEqual(['bun', 'src/cli/healthcheck.ts'])
    expect(defaultCommand).toEqual(['bun', 'run', 'start'])
    const ignored = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n')
    expect(ignored).toEqual(expect.arrayContaining(['.env', 'node_modules', '.data']))
    // Only production dependencies were installed in the image copy.
    expect(Bun.file(join(image, 'node_modules/drizzle-kit/package.json')).size).toBe(0)
    expect(Bun.file(join(image, 'node_modules/elysia/package.json')).size).toBeGreaterThan(0)
  })
})

describe('docker-compose.yml', () => {
  test('services start in order: migrate after a healthy Postgres, api and worker after migrate and Redis', () => {
    const { services } = compose
    expect(Object.keys(services).sort()).toEqual(['api', 'backup', 'migrate', 'postgres', 'redis', 'worker'])
    expect(services.postgres.healthcheck.test).toBeArray()
    expect(services.postgres.volumes.length).toBeGreaterThan(0)
    expect(services.redis.healthcheck.test).toBeArray()
    expect(services.migrate.depends_on.postgres.condition).toBe('service_healthy')
    for (const name of ['api', 'worker']) {
      expect(services[name].depends_on.migrate.condition).toBe('service_completed_successfully')
      expect(services[name].depends_on.redis.condition).toBe('service_healthy')
    }
    expect(services.api.ports).toEqual(['3000:3000'])
    for (const name of ['migrate', 'api', 'worker']) expect(services[name].image).toBe('order-api:local')
  })

  test('the migrate, api and worker commands and both health checks work from the image’s files', async () => {
    const migrate = run(compose.services.migrate.command, composeEnv('migrate', {}))
    expect(await migrate.exited).toBe(0)
    const check = postgres(databaseUrl, { max: 1, onnotice: () => {} })
    try {
      const [counts] =
        await check`SELECT (SELECT count(*)::int FROM products) AS products, (SELECT count(*)::int FROM users WHERE role = 'admin') AS admins`
      expect(counts!.products).toBeGreaterThanOrEqual(12)
      expect(counts!.admins).toBe(1)
    } finally {
      await check.end()
    }

    const apiPort = String(freePort())
    const workerPort = String(freePort())
    run(compose.services.api.command, composeEnv('api', { PORT: apiPort }))
    run(compose.services.worker.command, composeEnv('worker', { WORKER_METRICS_PORT: workerPort }))

    const healthy = (command: string[], env: Record<string, string>) => async () =>
      (await run(command, env).exited) === 0
    expect(await waitFor(healthy(healthcheck, { PATH: process.env.PATH!, PORT: apiPort }), 20_000, 200)).toBe(true)
    const workerCheck = [...compose.services.worker.healthcheck.test.slice(1, -1), workerPort]
    expect(await waitFor(healthy(workerCheck, { PATH: process.env.PATH! }), 20_000, 200)).toBe(true)
    // The check really checks: nothing listens here.
    expect(await run(healthcheck, { PATH: process.env.PATH!, PORT: String(freePort()) }).exited).toBe(1)

    const ready = await fetch(`http://127.0.0.1:${apiPort}/health/ready`)
    expect(ready.status).toBe(200)
    // The stack's check names the path: readiness, which fails while Postgres or Redis do not answer.
    const stackCheck = stack.services.api.healthcheck.test.slice(1)
    expect(await run(stackCheck.with(2, apiPort), { PATH: process.env.PATH! }).exited).toBe(0)
    expect(await run(stackCheck.with(2, apiPort).with(3, '/no-such-path'), { PATH: process.env.PATH! }).exited).toBe(1)
  })
})

/** `${expression}` as compose files write it. */
const composeVariable = (expression: string) => `$\{${expression}}`

/** A compose shell command as the container's shell gets it: `$$` is a literal `$`. */
const shellOf = (text: string) => text.replaceAll('$$', '$')

describe('the backup service (compose and stack)', () => {
  test('dumps on schedule, keeps the newest BACKUP_KEEP, each restorable, and its health check sees a fresh one', async () => {
    expect(stack.services.backup.command).toEqual(compose.services.backup.command)
    // Pointed at a replica by one variable; the stack's own Postgres by default.
    for (const file of [compose, stack])
      expect(file.services.backup.environment.PGHOST).toBe(composeVariable('BACKUP_PGHOST:-postgres'))
    const folder = mkdtempSync(join(tmpdir(), 'order-api-backups-'))
    const url = new URL(process.env.DATABASE_URL!)
    const env = {
      PATH: `${pgBin()}:${process.env.PATH}`,
      PGHOST: url.hostname,
      PGPORT: url.port || '5432',
      PGUSER: decodeURIComponent(url.username),
      PGDATABASE: url.pathname.slice(1),
      BACKUP_KEEP: '2',
      BACKUP_INTERVAL_SECONDS: '1',
    }
    const loop = Bun.spawn(['sh', '-c', shellOf(compose.services.backup.command[0]).replaceAll('/backups', folder)], {
      env,
      stdout: 'ignore',
      stderr: 'inherit',
    })
    try {
      const dumps = () => readdirSync(folder).filter((name) => name.endsWith('.dump'))
      // Several rounds: names carry the second, so wait for a third distinct one.
      const seen = new Set<string>()
      await waitFor(
        () => {
          for (const name of dumps()) seen.add(name)
          return seen.size >= 3 || undefined
        },
        30_000,
        100,
      )
      expect(seen.size).toBeGreaterThanOrEqual(3)
      expect(dumps().length).toBeLessThanOrEqual(2)
      const newest = dumps().sort().pop()!
      const listing = Bun.spawnSync(['pg_restore', '--list', join(folder, newest)], { env })
      expect(listing.exitCode).toBe(0)
      expect(listing.stdout.toString()).toContain('TABLE public orders')
      const check = shellOf(compose.services.backup.healthcheck.test[1]).replaceAll('/backups', folder)
      expect(Bun.spawnSync(['sh', '-c', check], { env }).exitCode).toBe(0)
      loop.kill()
      rmSync(folder, { recursive: true, force: true })
      const empty = mkdtempSync(join(tmpdir(), 'order-api-backups-'))
      expect(Bun.spawnSync(['sh', '-c', check.replaceAll(folder, empty)], { env }).exitCode).not.toBe(0)
      rmSync(empty, { recursive: true, force: true })
    } finally {
      loop.kill()
      rmSync(folder, { recursive: true, force: true })
    }
  }, 60_000)
})

describe('the backup service when Postgres is not up yet', () => {
  test('tries again after BACKUP_RETRY_SECONDS, not a whole interval later (a swarm starts services in no order)', async () => {
    const url = new URL(process.env.DATABASE_URL!)
    const postgresLater = tcpProxy(Number(url.port || 5432))
    postgresLater.cut()
    const folder = mkdtempSync(join(tmpdir(), 'order-api-backups-'))
    const loop = Bun.spawn(['sh', '-c', shellOf(compose.services.backup.command[0]).replaceAll('/backups', folder)], {
      env: {
        PATH: `${pgBin()}:${process.env.PATH}`,
        PGHOST: '127.0.0.1',
        PGPORT: String(postgresLater.port),
        PGUSER: decodeURIComponent(url.username),
        PGDATABASE: url.pathname.slice(1),
        BACKUP_KEEP: '2',
        BACKUP_INTERVAL_SECONDS: '3600',
        BACKUP_RETRY_SECONDS: '1',
      },
      stdout: 'ignore',
      stderr: 'ignore',
    })
    try {
      await Bun.sleep(1_500)
      expect(readdirSync(folder).filter((name) => name.endsWith('.dump'))).toEqual([])
      postgresLater.heal()
      const dumped = await waitFor(() => readdirSync(folder).some((name) => name.endsWith('.dump')), 15_000, 100)
      expect(dumped).toBe(true)
    } finally {
      loop.kill()
      postgresLater.cut()
      rmSync(folder, { recursive: true, force: true })
    }
  }, 60_000)
})

describe('deploy/stack.yml', () => {
  test('rolls out start-first with rollback, behind a host-published proxy, with secrets from files', () => {
    const { services, secrets } = stack
    for (const name of ['api', 'worker']) {
      const service = services[name]
      expect(service.image).toBe(composeVariable('ORDER_API_IMAGE:-order-api:latest'))
      expect(service.deploy.update_config).toMatchObject({ order: 'start-first', failure_action: 'rollback' })
      expect(service.deploy.endpoint_mode).toBe('dnsrr')
      expect(service.environment.JWT_SECRET_FILE).toBe('/run/secrets/order_api_jwt_secret')
      expect(service.environment.ADMIN_PASSWORD_FILE).toBe('/run/secrets/order_api_admin_password')
      expect(service.environment.JWT_SECRET).toBeUndefined()
      expect(service.command.join(' ')).toContain('bun run db:migrate &&')
    }
    expect(services.api.deploy.replicas).toBe(3)
    expect(services.worker.deploy.replicas).toBe(2)
    expect(services.api.healthcheck.test.slice(1)).toEqual(['bun', 'src/cli/healthcheck.ts', '3000', '/health/ready'])
    expect(services.proxy.ports).toEqual([
      { target: 80, published: composeVariable('PUBLISH_PORT:-80'), protocol: 'tcp', mode: 'host' },
    ])
    expect(secrets).toEqual({ order_api_jwt_secret: { external: true }, order_api_admin_password: { external: true } })
    const haproxy = readFileSync(join(root, 'deploy/haproxy.cfg'), 'utf8')
    expect(haproxy).toMatch(/server-template api \d+ tasks\.api:3000/)
    expect(haproxy).toMatch(/retry-on conn-failure\n/)
  })
})
