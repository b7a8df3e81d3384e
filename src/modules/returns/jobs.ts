import { UnrecoverableError } from 'bullmq'
import { sql } from '../../db/client'
import { formatCents, type Mailer, sendOneOnce } from '../notifications/service'
import { QUEUES, ReturnNotificationPayload } from '../../outbox/definitions'
import { type EffectChecks, payloadInt } from '../../outbox/reconcile'
import { checked, type QueueHandler } from '../../outbox/workers'

// The returns' background work, run by the worker: telling the customer their return was
// received or rejected.

type ReturnForMessage = {
  id: number
  order_id: number
  user_id: number
  email: string
  refund_cents: string
  note: string | null
}

const MESSAGES = {
  received: (r: ReturnForMessage) => ({
    subject: `Your return #${r.id} has been received`,
    text: `We have received your return #${r.id} for order #${r.order_id}. Refund: ${formatCents(Number(r.refund_cents))}.`,
  }),
  rejected: (r: ReturnForMessage) => ({
    subject: `Your return #${r.id} was not accepted`,
    text: `Your return #${r.id} for order #${r.order_id} was not accepted: ${r.note ?? ''}`,
  }),
}

/** Tells the customer their return was received or rejected, once (see sendOnce). */
export async function notifyReturn({ returnId, kind }: ReturnNotificationPayload, mailer: Mailer) {
  const [found] = await sql<ReturnForMessage[]>`
    SELECT r.id, r.order_id, r.user_id, u.email, r.refund_cents, r.note
    FROM returns r JOIN users u ON u.id = r.user_id WHERE r.id = ${returnId}`
  if (!found) throw new UnrecoverableError(`Return ${returnId} does not exist`)
  return sendOneOnce(
    {
      dedupeKey: `return-${kind}:${returnId}`,
      orderId: found.order_id,
      userId: found.user_id,
      message: { to: found.email, ...MESSAGES[kind](found) },
    },
    mailer,
  )
}

export const returnJobs = (mailer: Mailer): QueueHandler[] => [
  {
    queue: QUEUES.returnNotification,
    process: (job) => notifyReturn(checked(job, ReturnNotificationPayload), mailer),
  },
]

/** For the reconciler: a notification is done when its message was sent, or the return is gone. */
export const returnEffects: EffectChecks = {
  [QUEUES.returnNotification]: (row) => `EXISTS (
      SELECT 1 FROM notifications n WHERE n.sent_at IS NOT NULL
        AND n.dedupe_key = 'return-' || (${row}.payload->>'kind') || ':' || (${row}.payload->>'returnId'))
    OR NOT EXISTS (SELECT 1 FROM returns WHERE id = ${payloadInt(`${row}.payload->>'returnId'`)})`,
}
