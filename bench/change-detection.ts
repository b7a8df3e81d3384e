// make bench's change-detection phase: what the catalogue's change feed costs Postgres per API
// process, and whether cached answers of unchanged products survive, while product pages are
// read (a) with nothing changing, (b) with five other products changing a second, and (c) the
// same with a transaction held open in another session throughout (a backup, a report).
import type { Subprocess } from 'bun'
import type postgres from 'postgres'

type Load = (
  options: Record<string, unknown>,
  hooks: { measuring?: () => Promise<void> | void; finished?: () => Promise<void> | void },
) => Promise<{ requestsPerSecond: number }>

export type ChangeDetectionRow = {
  phase: string
  /** Postgres CPU of the poll, as a share of one core (the probe's backend, from /proc). */
  pollCoreShare: number
  /** Products each poll reported changed, on average. */
  reportedPerPoll: number
  /** Rows of `products` read by sequential scans, whoever ran them, during the phase. */
  productRowsScanned: number
  /** Of the API's product answers during the phase (all of unchanged products): from memory. */
  hitShare: number
  getsPerSecond: number
}

type Options = {
  root: string
  env: Record<string, string>
  apiUrl: string
  monitor: postgres.Sql
  load: Load
  /** The products read (never written here), and the ones written, five a second. */
  readIds: number[]
  writtenIds: number[]
  seconds: number
}

const getCounts = async (apiUrl: string) => {
  const metrics = await (await fetch(`${apiUrl}/metrics`)).text()
  const count = (result: string) =>
    Number(
      metrics.match(new RegExp(`catalogue_cache_requests_total\\{kind="get",result="${result}"\\} (\\d+)`))?.[1] ?? 0,
    )
  return { hit: count('hit'), miss: count('miss') }
}

const productRowsScanned = async (monitor: postgres.Sql) =>
  Number((await monitor`SELECT seq_tup_read FROM pg_stat_user_tables WHERE relname = 'products'`)[0]!.seq_tup_read)

export async function measureChangeDetection(options: Options): Promise<ChangeDetectionRow[]> {
  const { monitor, apiUrl } = options
  const phases = [
    { phase: 'reads, nothing changes', writes: false, openTransaction: false },
    { phase: 'reads, 5 other products change a second', writes: true, openTransaction: false },
    { phase: 'the same, a transaction open throughout', writes: true, openTransaction: true },
  ]
  const rows: ChangeDetectionRow[] = []
  for (const { phase, writes, openTransaction } of phases) {
    const holder = openTransaction ? await monitor.reserve() : undefined
    let probe: Subprocess<'ignore', 'pipe', 'inherit'> | undefined
    let writer: ReturnType<typeof setInterval> | undefined
    let before: { counts: { hit: number; miss: number }; scanned: number } | undefined
    let after: typeof before
    try {
      if (holder) {
        await holder`BEGIN`
        await holder`SELECT pg_current_xact_id()` // an xid of its own: it holds the horizon back
      }
      const result = await options.load(
        { url: apiUrl, kind: 'get', productIds: options.readIds, duration: options.seconds },
        {
          measuring: async () => {
            before = { counts: await getCounts(apiUrl), scanned: await productRowsScanned(monitor) }
            probe = Bun.spawn(['bun', 'bench/change-probe.ts', String(options.seconds)], {
              cwd: options.root,
              env: { ...options.env, DATABASE_POOL_SIZE: '1' },
              stdout: 'pipe',
              stderr: 'inherit',
            })
            if (writes)
              writer = setInterval(() => {
                const id = options.writtenIds[Math.floor(Math.random() * options.writtenIds.length)]!
                monitor`UPDATE products SET inventory = inventory + 1 WHERE id = ${id}`.catch(console.error)
              }, 200)
          },
          finished: async () => {
            clearInterval(writer)
            after = { counts: await getCounts(apiUrl), scanned: await productRowsScanned(monitor) }
          },
        },
      )
      const measured = JSON.parse((await new Response(probe!.stdout).text()).trim()) as {
        polls: number
        cpuMs: number
        seconds: number
        reported: number
      }
      const hits = after!.counts.hit - before!.counts.hit
      const misses = after!.counts.miss - before!.counts.miss
      rows.push({
        phase,
        pollCoreShare: measured.cpuMs / (measured.seconds * 1000),
        reportedPerPoll: measured.reported / measured.polls,
        productRowsScanned: after!.scanned - before!.scanned,
        hitShare: hits / Math.max(1, hits + misses),
        getsPerSecond: result.requestsPerSecond,
      })
    } finally {
      clearInterval(writer)
      probe?.kill()
      if (holder) {
        await holder`ROLLBACK`.catch(() => {})
        holder.release()
      }
    }
  }
  return rows
}
