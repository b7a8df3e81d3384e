import nodemailer from 'nodemailer'
import { config } from '../../config'
import { sql } from '../../db/client'
import { into } from '../../db/names'
import { notifications } from '../../db/schema'
import { logger } from '../../lib/logger'

// Messages to customers (confirmations, shipped and delivered, returns): how they are delivered
// (the mailer) and how each goes out at most once (the notifications table). The features
// write the messages; this module sends them.

export type Message = { to: string; subject: string; text: string }

/** An amount in cents as a message shows it: 1234 → 12.34. */
export const formatCents = (cents: number) => (cents / 100).toFixed(2)

/** Delivers a message. The confirmation handler records every delivery in `notifications`. */
export interface Mailer {
  readonly transport: 'log' | 'smtp'
  deliver(message: Message): Promise<void>
}

/** Default transport: the `notifications` row plus this log line are the delivery. */
export class LogMailer implements Mailer {
  readonly transport = 'log' as const
  async deliver(message: Message) {
    logger.info({ to: message.to, subject: message.subject }, 'notification recorded (log transport)')
  }
}

export class SmtpMailer implements Mailer {
  readonly transport = 'smtp' as const
  private readonly transporter

  constructor(
    url: string,
    private readonly from: string,
  ) {
    this.transporter = nodemailer.createTransport(url)
  }

  async deliver(message: Message) {
    await this.transporter.sendMail({ from: this.from, ...message })
    logger.info({ to: message.to, subject: message.subject }, 'notification sent over SMTP')
  }
}

export const createMailer = (): Mailer =>
  config.SMTP_URL ? new SmtpMailer(config.SMTP_URL, config.MAIL_FROM) : new LogMailer()

const NOTIFICATION_COLUMNS = into(notifications, [
  'dedupeKey',
  'userId',
  'orderId',
  'transport',
  'recipient',
  'subject',
  'body',
])

/** An order whose message could not be sent in this run; `final` ones are never retried. */
export type ConfirmationFailure = { orderId: number; error: Error; final: boolean }

type Claim = { id: number; dedupe_key: string }
export type Outgoing = { dedupeKey: string; orderId: number; userId: number; message: Message }

/**
 * Sends each message at most once, whatever runs at the same time. A notification row is
 * claimed before its message goes out and marked sent right after, so a second run (retry,
 * re-relay, or a stalled job picked up while the first run is still alive) never sends again.
 * A claim left by a run that died before sending is taken over once it is older than a job
 * lock; a failed send releases its claim, so that a retry may send at once.
 */
export async function sendOnce(outgoing: Outgoing[], mailer: Mailer) {
  const byKey = new Map(outgoing.map((item) => [item.dedupeKey, item]))
  const claimed = await sql<Claim[]>`
    INSERT INTO ${NOTIFICATION_COLUMNS}
    SELECT * FROM unnest(${outgoing.map((o) => o.dedupeKey)}::text[], ${outgoing.map((o) => o.userId)}::int[],
      ${outgoing.map((o) => o.orderId)}::int[], ${outgoing.map(() => mailer.transport)}::text[],
      ${outgoing.map((o) => o.message.to)}::text[], ${outgoing.map((o) => o.message.subject)}::text[],
      ${outgoing.map((o) => o.message.text)}::text[])
    ON CONFLICT (dedupe_key) DO UPDATE SET claimed_at = now()
      WHERE notifications.sent_at IS NULL
        AND notifications.claimed_at < now() - make_interval(secs => ${config.WORKER_LOCK_DURATION_MS / 1000})
    RETURNING id, dedupe_key`

  const delivered = await Promise.allSettled(
    claimed.map((claim) => mailer.deliver(byKey.get(claim.dedupe_key)!.message)),
  )
  const sent: Claim[] = []
  const unsent: Claim[] = []
  const failures: ConfirmationFailure[] = []
  for (const [i, claim] of claimed.entries()) {
    const result = delivered[i]!
    if (result.status === 'fulfilled') sent.push(claim)
    else {
      unsent.push(claim)
      failures.push({ orderId: byKey.get(claim.dedupe_key)!.orderId, error: result.reason as Error, final: false })
    }
  }

  const claimedKeys = new Set(claimed.map((claim) => claim.dedupe_key))
  const notClaimed = outgoing.filter((item) => !claimedKeys.has(item.dedupeKey))
  const alreadySentKeys = notClaimed.length
    ? new Set(
        (
          await sql<{ dedupe_key: string }[]>`
            SELECT dedupe_key FROM notifications
            WHERE dedupe_key = ANY(${notClaimed.map((item) => item.dedupeKey)}::text[]) AND sent_at IS NOT NULL`
        ).map((row) => row.dedupe_key),
      )
    : new Set<string>()
  for (const item of notClaimed)
    if (!alreadySentKeys.has(item.dedupeKey))
      failures.push({
        orderId: item.orderId,
        error: new Error(`Order ${item.orderId}: its message is being sent by another run`),
        final: false,
      })

  await sql`
    WITH sent AS (
      UPDATE notifications SET sent_at = now() WHERE id = ANY(${sent.map((claim) => claim.id)}::int[])
    )
    UPDATE notifications SET claimed_at = '-infinity' WHERE id = ANY(${unsent.map((claim) => claim.id)}::int[])`
  return {
    sent: sent.map((claim) => byKey.get(claim.dedupe_key)!.orderId),
    alreadySent: [...alreadySentKeys].map((key) => byKey.get(key)!.orderId),
    failures,
  }
}

/** One message, once (see sendOnce): whether it went now or before; throws (to be retried) when it did not go. */
export async function sendOneOnce(item: Outgoing, mailer: Mailer) {
  const { failures, sent } = await sendOnce([item], mailer)
  if (failures[0]) throw failures[0].error
  return { outcome: sent.length ? 'sent' : 'already sent' }
}
