import { afterAll, describe, expect, test } from 'bun:test'
import { Queue } from 'bullmq'
import { createProducerConnection } from '../src/lib/redis'
import { JOB_NAMES, QUEUE_NAMES, QUEUES } from '../src/outbox/definitions'
import type { Queues } from '../src/outbox/queues'
import { OutboxRelay } from '../src/outbox/relay'
import { sql, waitFor } from './helpers'

// The relay alone, on a prefix of its own that nothing consumes, over the suite's outbox.

const connection = createProducerConnection(process.env.REDIS_URL)
const prefix = `relay-${process.pid}-${Date.now()}`
const queues = Object.fromEntries(QUEUE_NAMES.map((name) => [name, new Queue(name, { connection, prefix })])) as Queues

afterAll(async () => {
  await Promise.all(
    Object.values(queues).map((queue) => queue.obliterate({ force: true }).finally(() => queue.close())),
  )
  connection.disconnect()
})

/** Records where each pass started, and when. */
class RecordingRelay extends OutboxRelay {
  readonly starts: { from: number; at: number }[] = []
  override relayBatch(from = 0) {
    this.starts.push({ from, at: performance.now() })
    return super.relayBatch(from)
  }
}

const write = async (db: typeof sql = sql) => {
  const [row] = await db<{ id: string }[]>`
    INSERT INTO outbox (queue, name, payload)
    VALUES (${QUEUES.orderNotification}, ${JOB_NAMES.orderNotification}, ${JSON.stringify({ orderId: 1, kind: 'shipped' })}::jsonb)
    RETURNING id`
  return Number(row!.id)
}
const sent = async (id: number) =>
  (await sql<{ sent: boolean }[]>`SELECT sent_at IS NOT NULL AS sent FROM outbox WHERE id = ${id}`)[0]!.sent

describe('the outbox relay', () => {
  test('passes start past what was relayed lateCommitMs ago; a row committed later than that is relayed by the next full pass', async () => {
    const relay = new RecordingRelay(queues, { pollIntervalMs: 50, lateCommitMs: 200, fullPassEveryMs: 1_500 })
    const open = await sql.reserve()
    try {
      // A transaction writes a row and stays open while rows written after it are relayed.
      await open`BEGIN`
      const late = await write(open)
      relay.start()
      const early = await write()
      expect(await waitFor(() => sent(early), 5_000)).toBe(true)
      await Bun.sleep(500)
      const next = await write()
      expect(await waitFor(() => sent(next), 5_000)).toBe(true)
      expect(relay.starts.some((start) => start.from > late)).toBe(true)
      await open`COMMIT`
      const committedAt = performance.now()
      // Passes from past it cannot see it: the next full pass relays it.
      expect(await waitFor(() => sent(late), 5_000)).toBe(true)
      expect(relay.starts.some((start) => start.from === 0 && start.at > committedAt)).toBe(true)
    } finally {
      await open`ROLLBACK`.catch(() => {})
      open.release()
      await relay.stop()
    }
  })
})
