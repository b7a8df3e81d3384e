// make bench: the API's hot paths against their raw ceilings, measured side by side in one run.
import type { Subprocess } from 'bun'
import { mkdirSync, readFileSync } from 'node:fs'
import { peakRssMb, resetPeakRss } from './memory'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import { bench } from './config'
import { machineBusyMs, type PipelineCounts, pipelineCounter } from './pipeline'
import { type ChangeDetectionRow, measureChangeDetection } from './change-detection'
import { type BackupEffectRow, measureBackupEffect, shareOfQuiet } from './backup-effect'
import { type FeedCostRow, measureFeedCost } from './feed-cost'
import { measureExport } from './export-cost'
import { shareOfMeans } from './means'
import { measureTracingCost, tracingShare } from './tracing-cost'
import { benchPrefix, deleteBenchQueueKeys } from './queue-keys'
import { seedBenchDatabase } from './seed'

type Result = {
  requestsPerSecond: number
  p50: number
  p99: number
  total: number
  non2xx: number
  errors: number
  statuses?: Record<string, number>
  /** The load generator's own CPU over the measured run. */
  cpuMs?: number
}
type Row = {
  scenario: string
  api: Result
  ceiling: Result
  ratio: number
  target: number
  p99Target?: number
  /** Peak resident memory during the scenario (MB): the largest API process, the worker. */
  apiRssMb: number
  workerRssMb: number
}

const root = new URL('..', import.meta.url).pathname
const children: Subprocess[] = []
const stopAll = () => {
  for (const child of children) child.kill('SIGKILL')
}
process.on('exit', stopAll)
/** Stops the services and deletes this run's queues from Redis (also on Ctrl-C or SIGTERM). */
async function cleanUp() {
  stopAll()
  await deleteBenchQueueKeys(bench.redisUrl, process.pid).catch((error) =>
    console.error(`could not delete the bench's Redis keys: ${error}`),
  )
}
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, () => void cleanUp().then(() => process.exit(130)))

function freePort() {
  const server = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const port = server.port
  server.stop(true)
  return port
}

const prefix = benchPrefix(process.pid)
await deleteBenchQueueKeys(bench.redisUrl, process.pid) // runs killed outright left theirs behind
const serviceEnv = (extra: Record<string, string> = {}) => ({
  PATH: process.env.PATH!,
  HOME: process.env.HOME ?? '/tmp',
  NODE_ENV: 'production',
  LOG_LEVEL: 'warn',
  DATABASE_URL: bench.databaseUrl,
  DATABASE_POOL_SIZE: String(bench.poolSize),
  REDIS_URL: bench.redisUrl,
  JWT_SECRET: bench.jwtSecret,
  QUEUE_PREFIX: prefix,
  RATE_LIMIT_AUTH_MAX: '1000000',
  // Every simulated shopper shares one address here.
  RATE_LIMIT_SEARCH_MAX: '1000000',
  ...extra,
})

async function untilUp(url: string) {
  for (let i = 0; i < 200; i++) {
    if (
      await fetch(url).then(
        (r) => r.status < 500,
        () => false,
      )
    )
      return
    await Bun.sleep(100)
  }
  throw new Error(`${url} did not come up`)
}

// Scenario options (thousands of ids and tokens) travel in a file: too long for a command line.
let optionFiles = 0
async function optionsFile(options: Record<string, unknown>) {
  const path = join(tmpdir(), `order-api-bench-${process.pid}-${++optionFiles}.json`)
  await Bun.write(path, JSON.stringify(options))
  return path
}

type LoadHooks = { measuring?: () => Promise<void> | void; finished?: () => Promise<void> | void }

/** One load-generator run; `hooks` run when its measured run starts and as soon as it ends. */
async function load(options: Record<string, unknown>, hooks: LoadHooks = {}): Promise<Result> {
  const file = await optionsFile({
    connections: bench.connections,
    duration: bench.durationSeconds,
    warmup: bench.warmupSeconds,
    ...options,
  })
  const child = Bun.spawn(['node', `${root}bench/load.mjs`, file], {
    stdout: 'pipe',
    stderr: 'inherit',
  })
  let result: Result | undefined
  let pending = ''
  const decoder = new TextDecoder()
  for await (const chunk of child.stdout as ReadableStream<Uint8Array>) {
    pending += decoder.decode(chunk)
    const lines = pending.split('\n')
    pending = lines.pop()!
    for (const line of lines.filter(Boolean)) {
      const message = JSON.parse(line)
      if (message.phase === 'measuring') await hooks.measuring?.()
      else {
        await hooks.finished?.()
        result = message
      }
    }
  }
  if ((await child.exited) !== 0 || !result) throw new Error('load generator failed')
  return result
}

console.log(`Seeding ${bench.products} products and ${bench.customers} customers into a fresh benchmark database…`)
const seeded = await seedBenchDatabase()
// What shoppers read most: the first pages of the catalogue.
const FIRST_PAGES = 5
// Searches for a product number's digits: each matches a few dozen of the 100 000 products, in
// the name or the description, and there are thousands of different ones (mostly cache misses).
const searchTerms = Array.from({ length: 5_000 }, () => String(1_000 + Math.floor(Math.random() * 9_000)))
const SEARCH_P99_TARGET_MS = 20
// A hundred products, spread over the catalogue, get nine reads in ten in the skewed scenario.
const popularProductIds = seeded.activeProductIds.filter(
  (_, index) => index % Math.floor(seeded.activeProductIds.length / 100) === 0,
)

const ceilingPort = freePort()
const ceiling = Bun.spawn(['bun', 'bench/ceiling-list.ts', String(ceilingPort)], {
  cwd: root,
  env: serviceEnv(),
  stdout: 'ignore',
  stderr: 'inherit',
})
children.push(ceiling)
const ceilingUrl = `http://127.0.0.1:${ceilingPort}`
await untilUp(`${ceilingUrl}/api/products?page=1&limit=10`)

async function orderCeiling(
  productIds: number[],
  seconds = { warmup: bench.warmupSeconds, duration: bench.durationSeconds },
  batching: { batchSize?: number; callers?: number; lines?: number } = {},
): Promise<Result> {
  const child = Bun.spawn(
    [
      'bun',
      'bench/ceiling-order.ts',
      await optionsFile({
        productIds,
        customerIds: seeded.customerIds,
        ...seconds,
        ...batching,
      }),
    ],
    { cwd: root, env: serviceEnv(), stdout: 'pipe', stderr: 'inherit' },
  )
  children.push(child)
  const output = await new Response(child.stdout).text()
  if ((await child.exited) !== 0) throw new Error('order ceiling failed')
  return JSON.parse(output.trim().split('\n').pop()!)
}

type EndToEnd = {
  placedPerSecond: number
  confirmedPerSecond: number
  backlogAtEnd: number
  drainSeconds: number
  cpuMsPerOrder: number
  p99: number
}
type EndToEndName = 'hot' | 'many' | 'multiLine'
type Scenario = {
  name: string
  target: number
  api: () => Promise<Result>
  ceiling: () => Promise<Result>
  /** Order scenarios run end to end, with the worker beside the API: this names them in the JSON. */
  endToEnd?: EndToEndName
  /** A latency target for the API (p99, ms), checked beside the ratio. */
  p99Target?: number
}
let apiUrl = ''
const monitor = postgres(bench.databaseUrl, { max: 2, onnotice: () => {} })
const pipeline = pipelineCounter(monitor, bench.redisUrl, prefix)
const endToEndResults: Partial<Record<EndToEndName, EndToEnd>> = {}

/** Waits until every order placed so far is relayed, confirmed and audited; returns the seconds it took. */
async function drain(timeoutSeconds = 120) {
  const started = performance.now()
  for (;;) {
    const counts = await pipeline.counts()
    if (counts.backlog === 0 && counts.confirmed === counts.orders) return (performance.now() - started) / 1000
    if (performance.now() - started > timeoutSeconds * 1000) return Number.POSITIVE_INFINITY
    await Bun.sleep(50)
  }
}

/**
 * Orders placed and confirmed per second over the same measured window, the backlog when the
 * load stops and how long it takes to drain, and the server's CPU per order: the machine's busy
 * CPU over the window minus the load generator's own, so the API, the worker, Postgres and Redis
 * all count.
 */
async function endToEnd(
  name: EndToEndName,
  productIds: number[],
  lines = 1,
  shippingAddress?: Record<string, string>,
): Promise<Result> {
  await drain()
  let start: { at: number; cpu: number; counts: PipelineCounts } | undefined
  let end: typeof start
  const sample = async () => ({ at: performance.now(), cpu: machineBusyMs(), counts: await pipeline.counts() })
  const result = await load(
    { url: apiUrl, kind: 'order', tokens: seeded.tokens, productIds, lines, shippingAddress },
    {
      measuring: async () => {
        start = await sample()
      },
      finished: async () => {
        end = await sample()
      },
    },
  )
  const drainSeconds = await drain()
  const seconds = (end!.at - start!.at) / 1000
  const placed = end!.counts.orders - start!.counts.orders
  endToEndResults[name] = {
    placedPerSecond: placed / seconds,
    confirmedPerSecond: (end!.counts.confirmed - start!.counts.confirmed) / seconds,
    backlogAtEnd: end!.counts.backlog + (end!.counts.orders - end!.counts.confirmed),
    drainSeconds,
    cpuMsPerOrder: (end!.cpu - start!.cpu - (result.cpuMs ?? 0)) / placed,
    p99: result.p99,
  }
  return result
}

const scenarios = (
  [
    {
      name: `GET /api/products?page=1..${FIRST_PAGES}`,
      target: 2,
      api: () => load({ url: apiUrl, kind: 'list', pages: FIRST_PAGES }),
      ceiling: () => load({ url: ceilingUrl, kind: 'list', pages: FIRST_PAGES }),
    },
    {
      name: `GET /api/products?page=1..${FIRST_PAGES} (304)`,
      // Revalidation with If-None-Match against the uncached ceiling's full answer.
      target: 3,
      api: async () => load({ url: apiUrl, kind: 'revalidate', etags: await currentEtags() }),
      ceiling: () => load({ url: ceilingUrl, kind: 'list', pages: FIRST_PAGES }),
    },
    {
      name: 'GET /api/products/:id',
      target: 2,
      api: () => load({ url: apiUrl, kind: 'get', productIds: seeded.activeProductIds }),
      ceiling: () => load({ url: ceilingUrl, kind: 'get', productIds: seeded.activeProductIds }),
    },
    {
      name: 'GET /api/products/:id (90% on 100 products)',
      target: 2,
      api: () =>
        load({
          url: apiUrl,
          kind: 'get',
          productIds: seeded.activeProductIds,
          popular: popularProductIds,
        }),
      ceiling: () =>
        load({
          url: ceilingUrl,
          kind: 'get',
          productIds: seeded.activeProductIds,
          popular: popularProductIds,
        }),
    },
    {
      name: 'GET /api/products?q=…&in_stock&sort',
      target: 1,
      p99Target: SEARCH_P99_TARGET_MS,
      api: () => load({ url: apiUrl, kind: 'search', terms: searchTerms }),
      ceiling: () => load({ url: ceilingUrl, kind: 'search', terms: searchTerms }),
    },
    {
      name: 'POST /api/orders (many products)',
      target: 0.7,
      endToEnd: 'many',
      api: () => endToEnd('many', seeded.activeProductIds),
      ceiling: () => orderCeiling(seeded.activeProductIds),
    },
    {
      name: 'POST /api/orders (3 lines, many products)',
      target: 0.7,
      endToEnd: 'multiLine',
      api: () => endToEnd('multiLine', seeded.activeProductIds, 3),
      ceiling: () => orderCeiling(seeded.activeProductIds, undefined, { lines: 3 }),
    },
    {
      name: 'POST /api/orders (one hot product)',
      // Against the single-statement ceiling: combining should place ≥ 3× what one statement per order can.
      target: 3,
      endToEnd: 'hot',
      api: () => endToEnd('hot', [seeded.hotProductId]),
      ceiling: () => orderCeiling([seeded.hotProductId]),
    },
    // BENCH_ONLY=orders (a substring of scenario names) runs a subset.
  ] satisfies Scenario[] as Scenario[]
).filter(
  (scenario) => !process.env.BENCH_ONLY || scenario.name.toLowerCase().includes(process.env.BENCH_ONLY.toLowerCase()),
)

/** The current ETag of each first page, for the revalidation scenario. */
async function currentEtags() {
  return Promise.all(
    Array.from({ length: FIRST_PAGES }, async (_, index) => {
      const path = `/api/products?page=${index + 1}&limit=10`
      return [path, (await fetch(`${apiUrl}${path}`)).headers.get('etag')]
    }),
  )
}

// Ceilings first, while no API runs: otherwise the API's outbox relay would spend the API
// phase relaying the jobs of the ceiling's orders (its statement writes outbox rows too).
/** Flushes dirty pages and settles background work, so no phase inherits the last one's writes. */
async function settle() {
  await monitor`CHECKPOINT`
  await Bun.sleep(1_000)
}

// Prime the fresh tables with orders and refresh the planner's statistics first: plans that
// prepared statements cache on near-empty tables would otherwise handicap whichever side runs first.
console.log('… priming the order tables')
await orderCeiling(seeded.activeProductIds, { warmup: 0, duration: 3 })
await monitor`VACUUM ANALYZE`

const ceilingResults = new Map<string, Result>()
for (const scenario of scenarios) {
  await settle()
  console.log(`… ceiling: ${scenario.name}`)
  ceilingResults.set(scenario.name, await scenario.ceiling())
}
// The same order SQL in batches of 32 from 4 callers: the ceiling order combining aims at.
let batchedCeiling: Result | undefined
if (scenarios.some((scenario) => scenario.endToEnd === 'hot')) {
  await settle()
  console.log('… ceiling: hot product, batches of 32')
  batchedCeiling = await orderCeiling([seeded.hotProductId], undefined, { batchSize: 32, callers: 4 })
}
ceiling.kill('SIGKILL')
// The ceilings' orders are not the pipeline's to confirm: mark them done before the API runs.
await monitor`UPDATE outbox SET sent_at = now() WHERE sent_at IS NULL`
await monitor`UPDATE orders SET status = 'confirmed' WHERE status = 'pending'`
await monitor`VACUUM ANALYZE`

// The API and the worker exactly as `bun run start` and `bun run worker` run them, in production
// mode, logging at warn, on this one machine. BENCH_API_PROCESSES=2 starts two APIs on the same
// port (SO_REUSEPORT), for the scaling note.
const apiProcesses = Number(process.env.BENCH_API_PROCESSES ?? 1)
const apiPort = freePort()
// The heap size JavaScriptCore plans for, as `bun run start` and `bun run worker` set it
// (package.json), unless BUN_JSC_forceRAMSize is set here; CATALOGUE_CACHE_MB passed through.
const scripts = JSON.parse(readFileSync(`${root}package.json`, 'utf8')).scripts
const memoryKnobs = (script: string) => ({
  BUN_JSC_forceRAMSize: process.env.BUN_JSC_forceRAMSize ?? script.match(/forceRAMSize:-(\d+)/)![1]!,
  ...(process.env.CATALOGUE_CACHE_MB ? { CATALOGUE_CACHE_MB: process.env.CATALOGUE_CACHE_MB } : {}),
})
const apiKnobs = memoryKnobs(scripts.start)
const workerKnobs = memoryKnobs(scripts.worker)
let apis: Subprocess[] = []
let worker!: Subprocess
/** Starts the API process(es) and the worker, with `extraEnv` added (the tracing phase's). */
async function startServices(extraEnv: Record<string, string> = {}) {
  apis = Array.from({ length: apiProcesses }, () => {
    const env = serviceEnv({ PORT: String(apiPort), ...apiKnobs, ...extraEnv })
    const child = Bun.spawn(['bun', 'src/server.ts'], { cwd: root, env, stdout: 'ignore', stderr: 'inherit' })
    children.push(child)
    return child
  })
  worker = Bun.spawn(['bun', 'src/worker.ts'], {
    cwd: root,
    env: serviceEnv({ WORKER_METRICS_PORT: '0', ...workerKnobs, ...extraEnv }),
    stdout: 'ignore',
    stderr: 'inherit',
  })
  children.push(worker)
  await untilUp(`${apiUrl}/health`)
  await Bun.sleep(500 * apiProcesses)
}
/** Stops them as an orchestrator would (SIGTERM: they drain), then starts them again. */
async function restartServices(extraEnv: Record<string, string>) {
  for (const child of [...apis, worker]) child.kill('SIGTERM')
  await Promise.all([...apis, worker].map((child) => child.exited))
  await startServices(extraEnv)
}
apiUrl = `http://127.0.0.1:${apiPort}`
await startServices()

const rows: Row[] = []
for (const scenario of scenarios) {
  await settle()
  console.log(`… API: ${scenario.name}${scenario.endToEnd ? ' (end to end, worker running)' : ''}`)
  for (const child of [...apis, worker]) resetPeakRss(child.pid)
  const api = await scenario.api()
  const ceilingResult = ceilingResults.get(scenario.name)!
  rows.push({
    scenario: scenario.name,
    api,
    ceiling: ceilingResult,
    ratio: api.requestsPerSecond / ceilingResult.requestsPerSecond,
    target: scenario.target,
    p99Target: scenario.p99Target,
    apiRssMb: Math.max(...apis.map((child) => peakRssMb(child.pid))),
    workerRssMb: peakRssMb(worker.pid),
  })
}
const apiPeakRss = Math.max(...rows.map((row) => row.apiRssMb))

// The change feed's cost and effect (BENCH_ONLY=change runs it alone): product pages of the
// popular hundred read while other products change.
const measuresChanges = !process.env.BENCH_ONLY || 'change detection'.includes(process.env.BENCH_ONLY.toLowerCase())
const changeRows: ChangeDetectionRow[] = []
if (measuresChanges) {
  const popular = new Set(popularProductIds)
  await settle()
  console.log('… API: change detection')
  changeRows.push(
    ...(await measureChangeDetection({
      root,
      env: serviceEnv(),
      apiUrl,
      monitor,
      load,
      readIds: popularProductIds,
      writtenIds: seeded.activeProductIds.filter((id) => !popular.has(id)),
      seconds: bench.durationSeconds,
    })),
  )
}

/** One end-to-end order run outside the scenario table (which keeps its own figures). */
async function orderRate(name: 'hot' | 'many', shippingAddress?: Record<string, string>) {
  const kept = endToEndResults[name]
  await settle()
  const { p99 } = await endToEnd(
    name,
    name === 'hot' ? [seeded.hotProductId] : seeded.activeProductIds,
    1,
    shippingAddress,
  )
  const { placedPerSecond } = endToEndResults[name]!
  if (kept) endToEndResults[name] = kept
  else delete endToEndResults[name]
  return { placedPerSecond, p99 }
}
/** The order statement driven straight from postgres.js on the hot product, as orders/s. */
async function statementRate(batching: { batchSize?: number; callers?: number }) {
  await settle()
  const { requestsPerSecond, p99 } = await orderCeiling([seeded.hotProductId], undefined, batching)
  return { placedPerSecond: requestsPerSecond, p99 }
}
// Phases that alternate many order runs (minutes each): only when asked for by name (BENCH_ONLY).
async function phase<Row>(name: string, announce: string, run: () => Promise<Row[]>): Promise<Row[]> {
  if (process.env.BENCH_ONLY?.toLowerCase() !== name) return []
  console.log(`… API: ${announce}`)
  return run()
}

// Hot orders during a backup against without one.
const backupRows: BackupEffectRow[] = await phase('backup', 'hot orders, with and without a backup (12 runs)', () =>
  measureBackupEffect({
    root,
    databaseUrl: bench.databaseUrl,
    monitor,
    hotOrders: () => orderRate('hot'),
    replicaPort: freePort(),
  }),
)

// What the change feed's triggers cost orders.
const feedRows: FeedCostRow[] = await phase('feed', 'orders with the change feed on and off (8 runs each)', () =>
  measureFeedCost({
    monitor,
    scenarios: {
      'one hot product': () => orderRate('hot'),
      'many products': () => orderRate('many'),
      // The stock statement alone, straight from postgres.js: the same cost with far less noise.
      'hot, single statements (SQL alone)': () => statementRate({}),
      'hot, batches of 32 (SQL alone)': () => statementRate({ batchSize: 32, callers: 4 }),
    },
  }),
)

// What OpenTelemetry costs orders, off and on.
const tracingCost = await phase('tracing', 'hot orders with tracing off and on (4 runs each)', async () => {
  const measured = await measureTracingCost({ restartServices, hotOrders: () => orderRate('hot') })
  return [measured]
})

// What a shipping address costs an order (#24): hot orders with and without one, alternated.
const ADDRESS = {
  name: 'Ada Lovelace',
  line1: '12 St James Square',
  city: 'London',
  postal_code: 'SW1Y 4JH',
  country: 'GB',
}
type AlternatedRow = { with: boolean; placedPerSecond: number; p99: number }
/** Hot orders alternately with and without something: four runs each, in the order o w w o o w w o. */
async function alternated(run: (withIt: boolean) => Promise<{ placedPerSecond: number; p99: number }>) {
  const runs: AlternatedRow[] = []
  for (const withIt of [false, true, true, false, false, true, true, false])
    runs.push({ with: withIt, ...(await run(withIt)) })
  return runs
}
const addressRows = await phase('address', 'hot orders with and without a shipping address (4 runs each)', () =>
  alternated((withIt) => orderRate('hot', withIt ? ADDRESS : undefined)),
)

// What low-stock alerts cost an order (#24): the hot product with a threshold set (armed: far
// below its stock, so each order's statement checks for a crossing) and without one.
const lowStockRows = await phase(
  'lowstock',
  'hot orders with and without a low-stock threshold (4 runs each)',
  async () => {
    try {
      return await alternated(async (withIt) => {
        await monitor`UPDATE products SET low_stock_threshold = ${withIt ? 10 : null} WHERE id = ${seeded.hotProductId}`
        return orderRate('hot')
      })
    } finally {
      await monitor`UPDATE products SET low_stock_threshold = NULL WHERE id = ${seeded.hotProductId}`
    }
  },
)

// An export of a million order lines (#24): its time and the worker's peak RSS.
const exportRows = await phase('export', 'an export of 1 000 000 order lines', async () => [
  await measureExport({
    monitor,
    apiUrl,
    jwtSecret: bench.jwtSecret,
    workerPid: worker.pid,
    apiPids: apis.map((child) => child.pid),
  }),
])

// Invariants after the run: no oversell, every unit sold accounted for.
const [stock] = await monitor<{ negative: number; hot_left: number; hot_sold: number }[]>`
  SELECT (SELECT count(*)::int FROM products WHERE inventory < 0) AS negative,
         (SELECT inventory::float8 FROM products WHERE id = ${seeded.hotProductId}) AS hot_left,
         (SELECT coalesce(sum(quantity), 0)::int FROM order_items WHERE product_id = ${seeded.hotProductId}) AS hot_sold`
await pipeline.close()
await monitor.end()
const oversold = stock!.negative > 0 || stock!.hot_left + stock!.hot_sold !== bench.hotStock

const fmt = (n: number, digits = 0) => n.toFixed(digits).padStart(8)
const unexpected = (r: Result) =>
  r.errors +
  Object.entries(r.statuses ?? {})
    .filter(([code]) => !code.startsWith('2') && code !== '409' && code !== '304')
    .reduce((sum, [, n]) => sum + n, 0)
console.log(
  `\n${apiProcesses} API process(es) and a worker, ${bench.connections} connections, ${bench.durationSeconds} s each after ${bench.warmupSeconds} s warm-up, pool ${bench.poolSize}, on ${navigator.hardwareConcurrency} cores; BUN_JSC_forceRAMSize=${apiKnobs.BUN_JSC_forceRAMSize} (API), ${workerKnobs.BUN_JSC_forceRAMSize} (worker), CATALOGUE_CACHE_MB=${process.env.CATALOGUE_CACHE_MB ?? 'default'}\n`,
)
if (rows.length)
  console.log(
    `${'scenario'.padEnd(42)} ${'api rps'.padStart(8)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'errors'.padStart(8)} ${'ceil rps'.padStart(8)} ${'c p50'.padStart(8)} ${'c p99'.padStart(8)} ${'ratio'.padStart(7)} ${'target'.padStart(7)} ${'API MB'.padStart(7)} ${'wkr MB'.padStart(7)}`,
  )
for (const row of rows)
  console.log(
    `${row.scenario.padEnd(42)} ${fmt(row.api.requestsPerSecond)} ${fmt(row.api.p50, 1)} ${fmt(row.api.p99, 1)} ${fmt(unexpected(row.api))} ${fmt(row.ceiling.requestsPerSecond)} ${fmt(row.ceiling.p50, 1)} ${fmt(row.ceiling.p99, 1)} ${`${Math.round(row.ratio * 100)}%`.padStart(7)} ${`≥${row.target * 100}%`.padStart(7)} ${row.apiRssMb.toFixed(0).padStart(7)} ${row.workerRssMb.toFixed(0).padStart(7)}`,
  )
for (const scenario of scenarios.filter((s) => s.p99Target)) {
  const row = rows.find((r) => r.scenario === scenario.name)!
  console.log(`${scenario.name}: API p99 ${row.api.p99.toFixed(1)} ms (target < ${scenario.p99Target} ms)`)
}
if (Object.keys(endToEndResults).length) {
  console.log(
    `\n${'end to end (worker running)'.padEnd(42)} ${'placed/s'.padStart(9)} ${'confirmed/s'.padStart(12)} ${'backlog'.padStart(8)} ${'drain s'.padStart(8)} ${'CPU ms/order'.padStart(13)} ${'p99 ms'.padStart(8)}`,
  )
  for (const [name, e] of Object.entries(endToEndResults))
    console.log(
      `${name.padEnd(42)} ${e.placedPerSecond.toFixed(0).padStart(9)} ${e.confirmedPerSecond.toFixed(0).padStart(12)} ${String(e.backlogAtEnd).padStart(8)} ${e.drainSeconds.toFixed(1).padStart(8)} ${e.cpuMsPerOrder.toFixed(2).padStart(13)} ${e.p99.toFixed(1).padStart(8)}`,
    )
}
if (batchedCeiling && endToEndResults.hot) {
  const single = ceilingResults.get('POST /api/orders (one hot product)')!.requestsPerSecond
  console.log(
    `\nhot product ceilings: single statement ${single.toFixed(0)}/s, batches of 32 ${batchedCeiling.requestsPerSecond.toFixed(0)}/s (p99 ${batchedCeiling.p99.toFixed(1)} ms); ` +
      `API end to end placed ${(endToEndResults.hot.placedPerSecond / single).toFixed(2)}× the single and ${Math.round((100 * endToEndResults.hot.placedPerSecond) / batchedCeiling.requestsPerSecond)}% of the batched ceiling`,
  )
}
if (changeRows.length) {
  console.log(
    `\n${'change detection, one API process'.padEnd(42)} ${'poll CPU'.padStart(9)} ${'changed/poll'.padStart(13)} ${'rows scanned'.padStart(13)} ${'hits'.padStart(7)} ${'gets/s'.padStart(8)}`,
  )
  for (const row of changeRows)
    console.log(
      `${row.phase.padEnd(42)} ${`${(row.pollCoreShare * 100).toFixed(2)}%`.padStart(9)} ${row.reportedPerPoll.toFixed(1).padStart(13)} ${String(row.productRowsScanned).padStart(13)} ${`${(row.hitShare * 100).toFixed(1)}%`.padStart(7)} ${row.getsPerSecond.toFixed(0).padStart(8)}`,
    )
  console.log(
    'poll CPU: share of one core (target ≤ 1 %); hits: on the unchanged products read (target ≥ 90 % with the transaction open)',
  )
}
if (backupRows.length) {
  console.log(
    `\n${'hot orders end to end'.padEnd(42)} ${'placed/s'.padStart(9)} ${'p99 ms'.padStart(8)} ${'dumps'.padStart(6)}`,
  )
  for (const row of backupRows)
    console.log(
      `${row.phase.padEnd(42)} ${row.placedPerSecond.toFixed(0).padStart(9)} ${row.p99.toFixed(1).padStart(8)} ${String(row.dumps).padStart(6)}`,
    )
  const share = (background: Parameters<typeof shareOfQuiet>[1]) =>
    `${Math.round(100 * shareOfQuiet(backupRows, background))}%`
  console.log(
    `hot orders, share of the rate beside nothing else (means): during a backup ${share('a backup')}; ` +
      `beside its transaction alone ${share('an idle transaction')}; during a backup from a replica ${share('a backup from a replica')}`,
  )
}
function printAlternated(title: string, rows: AlternatedRow[], withLabel: string, withoutLabel: string, what: string) {
  if (!rows.length) return
  console.log(`\n${title.padEnd(42)} ${'placed/s'.padStart(9)} ${'p99 ms'.padStart(8)}`)
  for (const [index, row] of rows.entries())
    console.log(
      `${`${index + 1}. ${row.with ? withLabel : withoutLabel}`.padEnd(42)} ${row.placedPerSecond.toFixed(0).padStart(9)} ${row.p99.toFixed(1).padStart(8)}`,
    )
  const share = shareOfMeans(
    rows,
    (row) => row.with,
    (row) => !row.with,
  )
  console.log(`${what}: ${Math.round(100 * share)}% of the rate without (means)`)
}
printAlternated('hot orders end to end, shipping address', addressRows, 'with', 'without', 'with a shipping address')
printAlternated(
  'hot orders end to end, low-stock threshold',
  lowStockRows,
  'threshold set',
  'no threshold',
  'with a low-stock threshold set',
)
for (const { rows: tracingRows, exports, bytes } of tracingCost) {
  console.log(`\n${'hot orders end to end, tracing'.padEnd(42)} ${'placed/s'.padStart(9)} ${'p99 ms'.padStart(8)}`)
  for (const [index, row] of tracingRows.entries())
    console.log(
      `${`${index + 1}. ${row.tracing}`.padEnd(42)} ${row.placedPerSecond.toFixed(0).padStart(9)} ${row.p99.toFixed(1).padStart(8)}`,
    )
  console.log(
    `with tracing on (100 % sampled, OTLP/HTTP protobuf): ${Math.round(100 * tracingShare(tracingRows))}% of the rate with it off (means); ` +
      `the collector got ${exports} exports, ${(bytes / 1e6).toFixed(1)} MB`,
  )
}
if (feedRows.length) {
  console.log(
    `\n${'orders end to end, change feed'.padEnd(42)} ${'on placed/s'.padStart(24)} ${'off placed/s'.padStart(24)} ${'on ÷ off'.padStart(9)}`,
  )
  const rates = (values: number[]) => values.map((value) => value.toFixed(0)).join(' ')
  for (const row of feedRows)
    console.log(
      `${row.scenario.padEnd(42)} ${rates(row.on).padStart(24)} ${rates(row.off).padStart(24)} ${`${(row.ratio * 100).toFixed(1)}%`.padStart(9)}`,
    )
  console.log('target: the feed costs orders under 5 % (on ÷ off ≥ 95 %)')
}
for (const row of exportRows)
  console.log(
    `\nexport of ${row.lines} order lines: built in ${row.buildSeconds.toFixed(1)} s (asked to done), worker RSS ${row.workerRssBeforeMb.toFixed(0)} MB before, ` +
      `peak ${row.workerPeakRssMb.toFixed(0)} MB while building (target ≤ 128 MB); downloaded ${(row.bytes / 1e6).toFixed(0)} MB, ` +
      `${row.downloadedLines} lines, in ${row.downloadSeconds.toFixed(1)} s, API RSS ${row.apiRssBeforeMb.toFixed(0)} MB before, peak ${row.apiPeakRssMb.toFixed(0)} MB`,
  )
if (rows.length)
  console.log(
    `\nAPI peak RSS: ${apiPeakRss.toFixed(1)} MB${apiProcesses > 1 ? ' (largest process)' : ''}; per scenario above (API MB, wkr MB: each scenario's own peak). ` +
      'Targets: API ≤ 160 MB reading, ≤ 128 MB ordering; worker ≤ 96 MB',
  )
console.log(
  `Oversells: ${oversold ? 'YES' : 'none'} (hot product: ${stock!.hot_sold} sold + ${stock!.hot_left} left = ${stock!.hot_sold + stock!.hot_left} of ${bench.hotStock})`,
)

mkdirSync(`${root}bench/results`, { recursive: true })
await Bun.write(
  `${root}bench/results/latest.json`,
  JSON.stringify(
    {
      at: new Date().toISOString(),
      settings: { ...bench, apiProcesses, apiKnobs, workerKnobs },
      rows,
      endToEnd: endToEndResults,
      singleStatementCeiling: ceilingResults.get('POST /api/orders (one hot product)')?.requestsPerSecond,
      batchedCeiling: batchedCeiling?.requestsPerSecond,
      apiPeakRssMb: apiPeakRss,
      changeDetection: changeRows,
      backupEffect: backupRows,
      feedCost: feedRows,
      tracingCost,
      shippingAddress: addressRows,
      lowStockThreshold: lowStockRows,
      export: exportRows,
      oversold,
    },
    null,
    2,
  ),
)
console.log('Written to bench/results/latest.json')
await cleanUp()
process.exit(0)
