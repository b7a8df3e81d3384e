// make bench-search-flood: 100 000 products; a product-page client's p99 alone and beside 64
// connections of uncached short searches, alternately in one run (BENCH_ROUNDS rounds, 3).
// Twice: the flood from one address (the per-address limit answers it), and from many
// addresses (the search lane, its queue bound and the timeout answer it). The product-page
// client has BENCH_GET_CONNECTIONS connections (64: as many as the flood). Not a test: nothing
// asserts a time.
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { bench } from './config'
import { benchPrefix, deleteBenchQueueKeys } from './queue-keys'
import { seedBenchDatabase } from './seed'

const root = new URL('..', import.meta.url).pathname
const seeded = await seedBenchDatabase()
const productIds = seeded.activeProductIds.slice(0, 2_000)

async function scenario(name: string, floodAddresses: boolean) {
  const port = 3900 + Math.floor(Math.random() * 500)
  const api = Bun.spawn(['bun', 'src/server.ts'], {
    cwd: root,
    env: {
      PATH: process.env.PATH!,
      HOME: process.env.HOME ?? '/tmp',
      NODE_ENV: 'production',
      LOG_LEVEL: 'error',
      PORT: String(port),
      DATABASE_URL: bench.databaseUrl,
      REDIS_URL: bench.redisUrl,
      JWT_SECRET: bench.jwtSecret,
      QUEUE_PREFIX: benchPrefix(process.pid),
      TRUST_PROXY: 'true',
    },
    stdout: 'inherit',
    stderr: 'inherit',
  })
  try {
    for (
      let i = 0;
      i < 100 &&
      !(await fetch(`http://127.0.0.1:${port}/health`).then(
        (r) => r.ok,
        () => false,
      ));
      i++
    )
      await Bun.sleep(100)
    const file = join(tmpdir(), `order-api-flood-${process.pid}.json`)
    await Bun.write(
      file,
      JSON.stringify({
        url: `http://127.0.0.1:${port}`,
        productIds,
        getConnections: Number(process.env.BENCH_GET_CONNECTIONS ?? 64),
        floodConnections: 64,
        floodAddresses,
        duration: Number(process.env.BENCH_DURATION ?? 10),
        rounds: Number(process.env.BENCH_ROUNDS ?? 3),
      }),
    )
    const load = Bun.spawn(['node', 'bench/search-flood.mjs', file], { cwd: root, stdout: 'pipe', stderr: 'inherit' })
    const lines = (await new Response(load.stdout).text())
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line))
    console.log(`\n${name}`)
    console.log('round  phase                   get p50  get p99   get/s  flood/s  p99 ratio  flood statuses')
    const alone = new Map(lines.filter((line) => line.phase === 'get alone').map((line) => [line.round, line.get.p99]))
    const ratios: number[] = []
    for (const line of lines) {
      const ratio = line.flood ? line.get.p99 / alone.get(line.round) : undefined
      if (ratio !== undefined) ratios.push(ratio)
      console.log(
        `${String(line.round).padEnd(6)} ${line.phase.padEnd(22)} ${String(line.get.p50).padStart(7)} ${String(line.get.p99).padStart(8)} ${String(line.get.requestsPerSecond).padStart(7)} ${String(line.flood?.requestsPerSecond ?? '').padStart(8)} ${ratio === undefined ? '         ' : `${ratio.toFixed(2)}×`.padStart(9)}  ${line.flood ? JSON.stringify(line.flood.statuses) : ''}`,
      )
    }
    const p99 = (phase: string) => Math.max(...lines.filter((line) => line.phase === phase).map((line) => line.get.p99))
    console.log(
      `get p99 beside the flood / alone: worst round ${Math.max(...ratios).toFixed(2)}×; worst beside / worst alone ${(p99('get beside the flood') / p99('get alone')).toFixed(2)}×`,
    )
  } finally {
    api.kill('SIGTERM')
    await api.exited
  }
}

try {
  await scenario('Flood from one address (RATE_LIMIT_SEARCH_MAX applies)', false)
  await scenario('Flood from many addresses (statement timeout and queue bound)', true)
} finally {
  await deleteBenchQueueKeys(bench.redisUrl, process.pid)
}
process.exit(0)
