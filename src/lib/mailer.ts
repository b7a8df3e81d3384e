import nodemailer from 'nodemailer'
import { config } from '../config'
import { logger } from './logger'

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
