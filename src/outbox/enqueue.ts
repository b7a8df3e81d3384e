import { sql, type Transaction } from '../db/client'
import { outbox } from '../db/schema'
import { currentTraceCarrier } from '../lib/tracing'
import type { OutboxJob } from './definitions'

type Listener = () => void
const listeners = new Set<Listener>()

/** Called after a transaction that wrote outbox rows commits, so the relay moves them at once. */
export function outboxWritten() {
  for (const listener of listeners) listener()
}

export function onOutboxWritten(listener: Listener) {
  listeners.add(listener)
  return () => listeners.delete(listener)
}

/** Writes jobs to the outbox inside the caller's transaction: they exist if and only if it commits. */
export async function enqueue(tx: Transaction, jobs: OutboxJob[]) {
  if (!jobs.length) return
  const carrier = currentTraceCarrier()
  const traceContext = carrier ? [carrier] : null
  await tx.insert(outbox).values(jobs.map(({ queue, name, payload }) => ({ queue, name, payload, traceContext })))
}

/**
 * Forgets outbox rows whose effect was done more than `days` ago (BullMQ keeps completed jobs a
 * week too). Rows whose effect is still missing stay, for the reconciler.
 */
export async function deleteRelayedOutboxRows(days = 7): Promise<number> {
  const deleted = await sql`DELETE FROM outbox WHERE done_at < now() - make_interval(days => ${days})`
  return deleted.count
}
