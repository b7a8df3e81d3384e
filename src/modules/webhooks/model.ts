import { Type as t, type Static } from '@sinclair/typebox'
import { webhookDeliveryStatus } from '../../db/schema'
import { CHANGES } from '../../outbox/events'
import { enumOf, PaginationQuery, positiveIntegerString } from '../../lib/model'

/** Every event an endpoint can subscribe to; `*` subscribes to all of them. */
export const WEBHOOK_EVENTS = [...CHANGES, 'webhook.test'] as const
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number]

const EventName = enumOf([...WEBHOOK_EVENTS, '*'] as const, { description: 'An event name, or `*` for all' })
const Events = t.Array(EventName, { minItems: 1, maxItems: WEBHOOK_EVENTS.length + 1, uniqueItems: true })
const Url = t.String({
  minLength: 1,
  maxLength: 2048,
  description: 'Absolute http(s) URL; loopback, private and link-local targets are refused',
  examples: ['https://erp.example.com/hooks/orders'],
})
const Description = t.String({ maxLength: 500 })

export const CreateWebhookBody = t.Object({
  url: Url,
  events: Events,
  description: t.Optional(Description),
})
export type CreateWebhookBody = Static<typeof CreateWebhookBody>

export const UpdateWebhookBody = t.Object({
  url: t.Optional(Url),
  events: t.Optional(Events),
  description: t.Optional(t.Union([Description, t.Null()])),
  enabled: t.Optional(t.Boolean({ description: 'Enabling again also clears the failure count' })),
})
export type UpdateWebhookBody = Static<typeof UpdateWebhookBody>

export const Webhook = t.Object(
  {
    id: t.Integer(),
    url: t.String(),
    events: t.Array(t.String()),
    description: t.Union([t.String(), t.Null()]),
    enabled: t.Boolean(),
    disabled_reason: t.Union([t.String(), t.Null()], { description: 'Why it was disabled automatically' }),
    created_at: t.String({ format: 'date-time' }),
    updated_at: t.String({ format: 'date-time' }),
  },
  { title: 'Webhook' },
)
export type Webhook = Static<typeof Webhook>

const Secret = t.String({
  description: 'Signing secret (`whsec_` + base64). Shown only when created or rotated: store it now.',
})
export const CreatedWebhook = t.Composite([Webhook, t.Object({ secret: Secret })], { title: 'CreatedWebhook' })
export const RotatedSecret = t.Object({ secret: Secret })
export const DeliveryAccepted = t.Object({ delivery_id: t.Integer() })

export const DeliveryStatus = enumOf(webhookDeliveryStatus.enumValues)
export const Delivery = t.Object(
  {
    id: t.Integer({ description: 'Also the `webhook-id` header, as `msg_<id>`' }),
    event_id: t.Integer(),
    event_type: t.String(),
    status: DeliveryStatus,
    attempts: t.Integer(),
    last_status_code: t.Union([t.Integer(), t.Null()]),
    last_error: t.Union([t.String(), t.Null()]),
    next_attempt_at: t.Union([t.String({ format: 'date-time' }), t.Null()]),
    created_at: t.String({ format: 'date-time' }),
    updated_at: t.String({ format: 'date-time' }),
  },
  { title: 'WebhookDelivery' },
)

export const DeliveriesQuery = t.Object({ ...PaginationQuery, status: t.Optional(DeliveryStatus) })

export const DeliveryParams = t.Object({
  id: positiveIntegerString('id', 2_147_483_647, 'Webhook id'),
  delivery_id: positiveIntegerString('delivery_id', Number.MAX_SAFE_INTEGER, 'Delivery id'),
})

export const WebhookList = t.Object({ data: t.Array(Webhook) })
