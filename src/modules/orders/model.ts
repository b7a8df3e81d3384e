import { Type as t, type Static } from '@sinclair/typebox'
import { orderStatus, userRole } from '../../db/schema'
import { enumOf, INT4, PaginationQuery, positiveIntegerString } from '../../lib/model'

export const OrderStatus = enumOf(orderStatus.enumValues)
export type OrderStatus = Static<typeof OrderStatus>

/** The most units of one product an order may hold, per line and after lines are merged. */
export const MAX_QUANTITY = 1000

export const OrderLineInput = t.Object({
  product_id: t.Integer({ minimum: 1, ...INT4, examples: [1] }),
  quantity: t.Integer({ minimum: 1, maximum: MAX_QUANTITY, examples: [2] }),
})

// Text fields: no control characters; a required one also not blank.
const PRINTABLE = '^[^\\u0000-\\u001f]*$'
const NOT_BLANK = '^[^\\u0000-\\u001f]*[^\\s\\u0000-\\u001f][^\\u0000-\\u001f]*$'
const required = (maxLength: number) => t.String({ minLength: 1, maxLength, pattern: NOT_BLANK })
const optional = (maxLength: number) => t.Optional(t.String({ maxLength, pattern: PRINTABLE }))

export const ShippingAddress = t.Object(
  {
    name: required(100),
    line1: required(200),
    line2: optional(200),
    city: required(100),
    region: optional(100),
    postal_code: required(20),
    country: t.String({ pattern: '^[A-Z]{2}$', description: 'ISO 3166-1 alpha-2, upper case' }),
    phone: optional(30),
  },
  {
    title: 'ShippingAddress',
    description: 'Where the order goes: a snapshot, kept as sent',
    examples: [
      { name: 'Ada Lovelace', line1: '12 St James Square', city: 'London', postal_code: 'SW1Y 4JH', country: 'GB' },
    ],
  },
)
export type ShippingAddress = Static<typeof ShippingAddress>

export const CreateOrderBody = t.Object(
  {
    items: t.Array(OrderLineInput, {
      minItems: 1,
      maxItems: 50,
      description: `1-50 lines; lines naming the same product are merged, and a merged quantity above ${MAX_QUANTITY} → 400`,
    }),
    shipping_address: t.Optional(ShippingAddress),
  },
  {
    examples: [
      {
        items: [
          { product_id: 1, quantity: 2 },
          { product_id: 2, quantity: 1 },
        ],
        shipping_address: {
          name: 'Ada Lovelace',
          line1: '12 St James Square',
          city: 'London',
          postal_code: 'SW1Y 4JH',
          country: 'GB',
        },
      },
    ],
  },
)
export type CreateOrderBody = Static<typeof CreateOrderBody>

export const OrderItem = t.Object({
  product_id: t.Integer(),
  name: t.String({ description: 'Product name when the order was placed' }),
  unit_price_cents: t.Integer({ description: 'Price when the order was placed' }),
  quantity: t.Integer(),
  line_total_cents: t.Integer(),
})

export const Order = t.Object(
  {
    id: t.Integer(),
    user_id: t.Integer(),
    status: OrderStatus,
    total_cents: t.Integer(),
    items: t.Array(OrderItem),
    shipment: t.Union(
      [
        t.Object({
          carrier: t.String(),
          tracking_number: t.String(),
          shipped_at: t.String({ format: 'date-time' }),
        }),
        t.Null(),
      ],
      { description: 'Set when the order is shipped' },
    ),
    shipping_address: t.Union([ShippingAddress, t.Null()], { description: 'As sent with the order, or null' }),
    delivered_at: t.Union([t.String({ format: 'date-time' }), t.Null()]),
    created_at: t.String({ format: 'date-time' }),
    updated_at: t.String({ format: 'date-time' }),
  },
  { title: 'Order' },
)
export type Order = Static<typeof Order>

// Not blank, and no control characters; stored without surrounding whitespace.
const ShipmentField = (description: string) =>
  t.String({
    minLength: 1,
    maxLength: 100,
    pattern: NOT_BLANK,
    description: `${description}; not blank`,
  })

export const StatusChangeBody = t.Object(
  {
    status: t.Union([t.Literal('processing'), t.Literal('shipped'), t.Literal('delivered')], {
      description: 'The status to move the order to',
    }),
    carrier: t.Optional(ShipmentField('Required for `shipped`')),
    tracking_number: t.Optional(ShipmentField('Required for `shipped`')),
    note: t.Optional(t.String({ maxLength: 500 })),
  },
  { examples: [{ status: 'shipped', carrier: 'DHL', tracking_number: '00340434161094042557' }] },
)
export type StatusChangeBody = Static<typeof StatusChangeBody>

/** A status change the lifecycle does not allow now: the order's status and where it can go. */
export const TransitionConflict = t.Object(
  {
    error: t.String(),
    status: OrderStatus,
    allowed: t.Array(OrderStatus, { description: 'The statuses an admin can move this order to now' }),
  },
  { title: 'TransitionConflict' },
)

export const HistoryEntry = t.Object({
  from_status: t.Union([OrderStatus, t.Null()], { description: 'null for the placement' }),
  to_status: OrderStatus,
  actor: t.Union([t.Object({ id: t.Integer(), role: enumOf(userRole.enumValues) }), t.Null()], {
    description: 'null for the worker',
  }),
  note: t.Union([t.String(), t.Null()]),
  created_at: t.String({ format: 'date-time' }),
})
export const OrderHistory = t.Object({ data: t.Array(HistoryEntry) })

export const MyOrdersQuery = t.Object(PaginationQuery)

const StatusFilter = enumOf(orderStatus.enumValues, { description: 'Only orders in this status' })

export const AllOrdersQuery = t.Object({
  ...PaginationQuery,
  status: t.Optional(StatusFilter),
  user_id: t.Optional(positiveIntegerString('user_id', INT4.maximum, 'Only orders of this user')),
})

export const OrderHeaders = t.Object({
  'idempotency-key': t.Optional(
    t.String({
      minLength: 1,
      maxLength: 255,
      description: 'Makes retries safe: the same key and body within 24 h returns the original order',
      examples: ['3f1c9a2e-order-42'],
    }),
  ),
})
