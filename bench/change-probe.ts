// The Postgres CPU one API process's change detection costs: its poll (productChangesSince), at
// its rate, from a process of its own with a pool of one connection, so that the backend's CPU
// in /proc is the poll's alone. Prints {polls, cpuMs, seconds, reported} as JSON.
// Usage: DATABASE_POOL_SIZE=1 bun bench/change-probe.ts <seconds>
import { readFileSync } from 'node:fs'
import { sql } from '../src/db/client'
import { POLL_EVERY_MS } from '../src/modules/products/changes'
import { productChangesSince } from '../src/modules/products/queries'

const seconds = Number(process.argv[2] ?? 10)
const [backend] = await sql<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`
const pid = backend!.pid
// utime and stime, the 14th and 15th fields of /proc/<pid>/stat, in clock ticks (100 a second).
const backendCpuMs = () => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

let snapshot: string | undefined
let polls = 0
let reported = 0
const began = performance.now()
const cpuBefore = backendCpuMs()
while (performance.now() - began < seconds * 1000) {
  const found = await productChangesSince(snapshot)
  snapshot = found.snapshot
  polls++
  reported += found.changed.length
  await Bun.sleep(POLL_EVERY_MS)
}
console.log(
  JSON.stringify({ polls, cpuMs: backendCpuMs() - cpuBefore, seconds: (performance.now() - began) / 1000, reported }),
)
await sql.end()
