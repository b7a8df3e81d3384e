import { expect } from 'bun:test'
import type { Subprocess } from 'bun'
import { freePort, waitFor } from './helpers'

// API and worker processes for tests that need them as production runs them: separate
// processes, real ports. Each test file that starts some calls `afterAll(stopServices)`; a test
// that needs its jobs on its own QUEUE_PREFIX stops them after each test instead, because every
// API process relays every row of the shared outbox onto its own prefix, whoever wrote the row.

const root = new URL('..', import.meta.url).pathname
const running = new Set<Subprocess>()

export type Service = {
  child: Subprocess
  /** The process's stdout lines (its JSON log), when started with `log: true`. */
  lines: string[]
  logs(): Record<string, any>[]
}

/** Runs `command` from the project root with the suite's database, Redis and secret. */
export function spawnService(
  command: string[],
  env: Record<string, string> = {},
  options: { log?: boolean } = {},
): Service {
  const child = Bun.spawn(command, {
    cwd: root,
    env: {
      PATH: process.env.PATH!,
      HOME: process.env.HOME ?? '/tmp',
      NODE_ENV: 'test',
      DATABASE_URL: process.env.DATABASE_URL!,
      REDIS_URL: process.env.REDIS_URL!,
      JWT_SECRET: process.env.JWT_SECRET!,
      LOG_LEVEL: 'warn',
      WORKER_METRICS_PORT: '0',
      RECONCILE_AFTER_SECONDS: process.env.RECONCILE_AFTER_SECONDS!,
      RATE_LIMIT_SEARCH_MAX: process.env.RATE_LIMIT_SEARCH_MAX!,
      ...env,
    },
    stdout: options.log ? 'pipe' : 'ignore',
    stderr: 'inherit',
  })
  running.add(child)
  const lines: string[] = []
  if (options.log)
    void (async () => {
      const decoder = new TextDecoder()
      let pending = ''
      for await (const chunk of child.stdout as ReadableStream<Uint8Array>) {
        pending += decoder.decode(chunk)
        const parts = pending.split('\n')
        pending = parts.pop()!
        lines.push(...parts)
      }
    })()
  return { child, lines, logs: () => lines.flatMap((line) => (line.startsWith('{') ? [JSON.parse(line)] : [])) }
}

export async function untilAnswering(url: string, timeoutMs = 20_000) {
  const up = await waitFor(
    () =>
      fetch(url).then(
        (response) => response.ok,
        () => false,
      ),
    timeoutMs,
    100,
  )
  expect({ url, up }).toEqual({ url, up: true })
}

/** `bun src/server.ts` on a free port, returned once ready (Postgres and Redis connected). */
export async function startApi(env: Record<string, string> = {}, options: { log?: boolean } = {}) {
  const port = freePort()
  const service = spawnService(['bun', 'src/server.ts'], { PORT: String(port), ...env }, options)
  const base = `http://127.0.0.1:${port}`
  await untilAnswering(`${base}/health/ready`)
  return { ...service, base }
}

export const startWorker = (env: Record<string, string> = {}, options: { log?: boolean } = {}) =>
  spawnService(['bun', 'src/worker.ts'], env, options)

/** A private redis-server, for tests that take Redis away. */
export const startRedis = (port: number) =>
  spawnService(['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'])

/**
 * A Redis Cluster of `masters` nodes from the installed redis-server, as an operator makes one
 * (`cluster-enabled yes`, `redis-cli --cluster create`), every node asking for `password`;
 * returns its nodes' addresses once every node says the cluster is ok. Its files go in `dir`.
 */
export async function startRedisCluster(dir: string, password: string, masters = 3) {
  const cli = (args: string[]) =>
    Bun.spawnSync(['redis-cli', '--no-auth-warning', '-a', password, ...args]).stdout.toString()
  const ports = Array.from({ length: masters }, () => freePort())
  for (const port of ports)
    spawnService([
      'redis-server',
      ...['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
      ...['--cluster-enabled', 'yes', '--cluster-port', String(freePort())],
      ...['--cluster-config-file', `nodes-${port}.conf`, '--requirepass', password, '--masterauth', password],
    ])
  const allSay = (args: string[], expected: string) =>
    waitFor(() => ports.every((port) => cli(['-p', String(port), ...args]).includes(expected)), 20_000, 100)
  expect(await allSay(['ping'], 'PONG')).toBe(true)
  const nodes = ports.map((port) => `127.0.0.1:${port}`)
  const created = Bun.spawnSync(
    ['redis-cli', '--no-auth-warning', '-a', password, '--cluster', 'create', ...nodes].concat([
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]),
  )
  expect({ created: created.exitCode, output: created.exitCode ? created.stdout.toString() : '' }).toEqual({
    created: 0,
    output: '',
  })
  expect(await allSay(['cluster', 'info'], 'cluster_state:ok')).toBe(true)
  return nodes
}

/** Kills every process started here and waits until they are gone. */
export async function stopServices() {
  const children = [...running]
  running.clear()
  for (const child of children) child.kill('SIGKILL')
  await Promise.all(children.map((child) => child.exited))
}
