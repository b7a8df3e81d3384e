// make bench's backup phase: hot orders end to end with and without a backup running, alternating
// in one sitting. A nightly pg_dump of a large database is one REPEATABLE READ transaction that
// lasts minutes, and holds back what vacuum may clean up meanwhile: every order's new version of
// the hot product's row stays. Here one session exports a snapshot and holds it open for the whole
// measurement, and `make backup`'s script dumps the database from that snapshot again and again:
// the same long backup, going on for as long as the orders are measured. A third kind holds the
// transaction open and dumps nothing, to tell the two costs apart.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type postgres from 'postgres'

const BACKGROUNDS = ['nothing else', 'a backup', 'an idle transaction'] as const
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
}

async function beside({ root, databaseUrl, monitor, hotOrders }: Options, background: Background) {
  if (background === 'nothing else') return { ...(await hotOrders()), dumps: 0 }
  const holder = await monitor.reserve()
  const dir = mkdtempSync(join(tmpdir(), 'bench-backups-'))
  let dumps = 0
  let stopping = false
  try {
    await holder`BEGIN ISOLATION LEVEL REPEATABLE READ`
    const [exported] = await holder<{ snapshot: string }[]>`SELECT pg_export_snapshot() AS snapshot`
    const dumping = (async () => {
      while (background === 'a backup' && !stopping) {
        const dump = Bun.spawn(['scripts/backup.sh', `--snapshot=${exported!.snapshot}`], {
          cwd: root,
          env: { ...process.env, DATABASE_URL: databaseUrl, BACKUP_DIR: dir },
          stdout: 'ignore',
          stderr: 'ignore',
        })
        if ((await dump.exited) !== 0) throw new Error('scripts/backup.sh failed')
        dumps++
      }
    })()
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
  const rows: BackupEffectRow[] = []
  // Each kind three times, in an order where each follows each: a drift over the sitting
  // (tables growing, say) weighs on all alike.
  const order = [0, 1, 2, 2, 1, 0, 1, 0, 2].map((index) => BACKGROUNDS[index]!)
  for (const [index, background] of order.entries())
    rows.push({ phase: `${index + 1}. beside ${background}`, background, ...(await beside(options, background)) })
  return rows
}

/** The mean rate beside `background` as a share of the mean beside nothing else. */
export function shareOfQuiet(rows: BackupEffectRow[], background: Background) {
  const mean = (kind: Background) => {
    const picked = rows.filter((row) => row.background === kind)
    return picked.reduce((sum, row) => sum + row.placedPerSecond, 0) / picked.length
  }
  return mean(background) / mean('nothing else')
}
