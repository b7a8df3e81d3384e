import { Type as t } from '@sinclair/typebox'
import { QUEUE_NAMES } from '../../outbox/definitions'

const StateCounts = t.Object({
  waiting: t.Integer(),
  active: t.Integer(),
  delayed: t.Integer(),
  completed: t.Integer(),
  failed: t.Integer(),
})

export const QueueOverview = t.Object(
  {
    queues: t.Object(Object.fromEntries(QUEUE_NAMES.map((name) => [name, StateCounts]))),
    outbox: t.Object({
      backlog: t.Integer({ description: 'Outbox rows not yet handed to BullMQ' }),
      oldest_pending_seconds: t.Union([t.Number(), t.Null()]),
    }),
  },
  {
    examples: [
      {
        queues: {
          'order-confirmation': { waiting: 0, active: 1, delayed: 0, completed: 120, failed: 0 },
          audit: { waiting: 2, active: 0, delayed: 0, completed: 240, failed: 1 },
        },
        outbox: { backlog: 0, oldest_pending_seconds: null },
      },
    ],
  },
)

export const QueueParams = t.Object({ queue: t.Union(QUEUE_NAMES.map((name) => t.Literal(name))) })

export const RetryResult = t.Object({ queue: t.String(), retried: t.Integer() })
