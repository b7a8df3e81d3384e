import { Type as t, type Static } from '@sinclair/typebox'
import { orderStatus } from '../../db/schema'
import { enumOf, INT4, PaginationQuery, positiveIntegerString } from '../../lib/model'

export const OrderStatus = enumOf(orderStatus.enumValues)
export type OrderStatus = Static<typeof OrderStatus>

export const OrderLineInput = t.Object({
  product_id: t.Integer({ minimum: 1, ...INT4, examples: [1] }),
  quantity: t.Integer({ minimum: 1, maximum: 1000, examples: [2] }),
})

export const CreateOrderBody = t.Object(
  {
    items: t.Array(OrderLineInput, {
      minItems: 1,
      maxItems: 50,
      description: '1-50 lines; lines naming the same product are merged',
    }),
  },
  {
    examples: [
      {
        items: [
          { product_id: 1, quantity: 2 },
          { product_id: 2, quantity: 1 },
        ],
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
    created_at: t.String({ format: 'date-time' }),
    updated_at: t.String({ format: 'date-time' }),
  },
  { title: 'Order' },
)
export type Order = Static<typeof Order>

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
