// A hot standby of the bench's Postgres on this machine, for the backup phase: pg_basebackup, then
// a server that streams the primary's WAL. It runs at the lowest CPU priority, standing in for a
// replica on a machine of its own, and with hot_standby_feedback off, so that nothing a query
// holds on it keeps the primary's vacuum back.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export type Replica = { url: string; stop: () => Promise<void> }

const asServerOwner = (command: string[]) =>
  process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--', ...command] : command

async function run(command: string[]) {
  const child = Bun.spawn(asServerOwner(command), { stdout: 'pipe', stderr: 'pipe' })
  const [code, out, err] = await Promise.all([
    child.exited,
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ])
  if (code !== 0) throw new Error(`${command[0]} failed: ${(err || out).trim()}`)
}

function serverBin() {
  const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(a) - Number(b))
  if (!versions.length) throw new Error('no Postgres server binaries under /usr/lib/postgresql')
  return `/usr/lib/postgresql/${versions.at(-1)}/bin`
}

/** Starts a streaming replica of `primaryUrl`'s server; its URL names the same database. */
export async function startReplica(primaryUrl: string, port: number): Promise<Replica> {
  const bin = serverBin()
  const dir = mkdtempSync(join(tmpdir(), 'bench-replica-'))
  const data = join(dir, 'data')
  if (process.getuid?.() === 0) await Bun.$`chown postgres ${dir}`.quiet()
  const stop = async () => {
    await run([`${bin}/pg_ctl`, '-D', data, '-m', 'immediate', 'stop']).catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    const primary = new URL(primaryUrl)
    primary.pathname = '/postgres'
    await run([`${bin}/pg_basebackup`, '-d', primary.href, '-D', data, '-R', '-X', 'stream', '-c', 'fast'])
    // A Debian cluster keeps its configuration outside the data directory: the copy gets its own.
    const config = join(data, 'postgresql.conf')
    if (!existsSync(config)) writeFileSync(config, '')
    writeFileSync(join(data, 'pg_hba.conf'), 'local all all trust\nhost all all 127.0.0.1/32 trust\n')
    // max_standby_streaming_delay -1: replay waits for a long dump rather than cancelling it.
    const options = [
      `-p ${port}`,
      `-k ${dir}`,
      '-c listen_addresses=127.0.0.1',
      '-c hot_standby=on',
      '-c hot_standby_feedback=off',
      '-c max_standby_streaming_delay=-1',
    ].join(' ')
    const log = join(dir, 'log')
    await run(['nice', '-n', '19', `${bin}/pg_ctl`, '-D', data, '-l', log, '-o', options, '-w', 'start']).catch(
      (error) => {
        throw new Error(`${error.message}\n${existsSync(log) ? readFileSync(log, 'utf8').slice(-2000) : ''}`)
      },
    )
    const url = new URL(primaryUrl)
    url.hostname = '127.0.0.1'
    url.port = String(port)
    return { url: url.href, stop }
  } catch (error) {
    await stop()
    throw error
  }
}
