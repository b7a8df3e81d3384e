// make bench's backup phase: hot orders end to end with and without a backup running, alternating
// in one sitting. A nightly pg_dump of a large database is one REPEATABLE READ transaction that
// lasts minutes, and holds back what vacuum may clean up meanwhile: every order's new version of
// the hot product's row stays. Here one session exports a snapshot and holds it open for the whole
// measurement, and `make backup`'s script dumps the database from that snapshot again and again:
// the same long backup, going on for as long as the orders are measured. A third kind holds the
// transaction open and dumps nothing, to tell the two costs apart. The fourth is the same backup
// taken from a streaming replica (bench/replica.ts): the primary then holds no transaction at all.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import { shareOfMeans } from './means'
import { type Replica, startReplica } from './replica'

const BACKGROUNDS = ['nothing else', 'a backup', 'an idle transaction', 'a backup from a replica'] as const
type Background = (typeof BACKGROUNDS)[number]
export type BackupEffectRow = {
  phase: string
  background: Background
  placedPerSecond: number
  p99: number
  dumps: number
}
type HotOrders = () => Promise<{ placedPerSecond: number; p99: number }>

type Options = {
  root: string
  databaseUrl: string
  monitor: postgres.Sql
  /** The hot-product scenario, end to end: orders placed per second and the request p99. */
  hotOrders: HotOrders
  /** Where the replica listens. */
  replicaPort: number
}
type Source = { url: string; sql: postgres.Sql }

async function beside(root: string, hotOrders: HotOrders, source: Source, background: Background) {
  if (background === 'nothing else') return { ...(await hotOrders()), dumps: 0 }
  const holder = await source.sql.reserve()
  const dir = mkdtempSync(join(tmpdir(), 'bench-backups-'))
  let dumps = 0
  let stopping = false
  try {
    await holder`BEGIN ISOLATION LEVEL REPEATABLE READ`
    const [exported] = await holder<{ snapshot: string }[]>`SELECT pg_export_snapshot() AS snapshot`
    const dumping = (async () => {
      while (background !== 'an idle transaction' && !stopping) {
        const dump = Bun.spawn(['scripts/backup.sh', `--snapshot=${exported!.snapshot}`], {
          cwd: root,
          env: { ...process.env, DATABASE_URL: source.url, BACKUP_DIR: dir },
          stdout: 'ignore',
          stderr: 'pipe',
        })
        const [code, stderr] = await Promise.all([dump.exited, new Response(dump.stderr).text()])
        if (code !== 0) throw new Error(`scripts/backup.sh failed: ${stderr.trim()}`)
        dumps++
      }
    })()
    // A failed dump ends the loop; the error is thrown once the orders' run is over.
    dumping.catch(() => {})
    const result = await hotOrders()
    stopping = true
    await dumping
    return { ...result, dumps }
  } finally {
    stopping = true
    await holder`ROLLBACK`.catch(() => {})
    holder.release()
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function measureBackupEffect(options: Options): Promise<BackupEffectRow[]> {
  const { root, databaseUrl, monitor, hotOrders } = options
  const primary = { url: databaseUrl, sql: monitor }
  let replica: (Replica & { sql: postgres.Sql }) | undefined
  try {
    // Started first and kept for every run: a replica is part of such a deployment all the time.
    const started = await startReplica(databaseUrl, options.replicaPort)
    replica = { ...started, sql: postgres(started.url, { max: 1, onnotice: () => {} }) }
  } catch (error) {
    console.log(`  (no backup from a replica: ${error instanceof Error ? error.message : error})`)
  }
  const rows: BackupEffectRow[] = []
  try {
    // Each kind three times, in an order where each follows each: a drift over the sitting
    // (tables growing, say) weighs on all alike.
    const order = [0, 1, 2, 3, 3, 2, 1, 0, 1, 3, 0, 2]
      .map((index) => BACKGROUNDS[index]!)
      .filter((background) => replica || background !== 'a backup from a replica')
    for (const [index, background] of order.entries()) {
      const source = background === 'a backup from a replica' ? replica! : primary
      const result = await beside(root, hotOrders, source, background)
      rows.push({ phase: `${index + 1}. beside ${background}`, background, ...result })
    }
    return rows
  } finally {
    await replica?.sql.end()
    await replica?.stop()
  }
}

/** The mean rate beside `background` as a share of the mean beside nothing else. */
export const shareOfQuiet = (rows: BackupEffectRow[], background: Background) =>
  shareOfMeans(
    rows,
    (row) => row.background === background,
    (row) => row.background === 'nothing else',
  )
