import { Type as t, type Static } from '@sinclair/typebox'
import { returnStatus } from '../../db/schema'
import { enumOf, INT4, PaginationQuery } from '../../lib/model'

export const ReturnStatus = enumOf(returnStatus.enumValues)
export type ReturnStatus = Static<typeof ReturnStatus>

/** The most units of one product a return request may name. */
export const MAX_RETURN_QUANTITY = 1000

// Free text (a customer's reason, an admin's note): any characters but NUL, which Postgres cannot hold.
const NO_NUL = '^[^\\u0000]*$'
const NOT_BLANK = '^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$'

export const ReturnLineInput = t.Object({
  product_id: t.Integer({ minimum: 1, ...INT4, description: 'A product that is a line of the order', examples: [1] }),
  quantity: t.Integer({ minimum: 1, maximum: MAX_RETURN_QUANTITY, examples: [1] }),
})

export const CreateReturnBody = t.Object(
  {
    items: t.Array(ReturnLineInput, {
      minItems: 1,
      maxItems: 50,
      description: '1-50 lines; lines naming the same product are merged',
    }),
    reason: t.Optional(t.String({ maxLength: 500, pattern: NO_NUL, description: 'Why, at most 500 characters' })),
  },
  { examples: [{ items: [{ product_id: 1, quantity: 1 }], reason: 'Too small' }] },
)
export type CreateReturnBody = Static<typeof CreateReturnBody>

export const ReceiveReturnBody = t.Object({
  restock: t.Optional(
    t.Boolean({
      description:
        "Put each line's units back into its product's stock (default true; deleted products are not restocked)",
    }),
  ),
  note: t.Optional(t.String({ maxLength: 500, pattern: NO_NUL })),
})
export type ReceiveReturnBody = Static<typeof ReceiveReturnBody>

export const RejectReturnBody = t.Object({
  note: t.String({ minLength: 1, maxLength: 500, pattern: NOT_BLANK, description: 'Why, 1-500 characters' }),
})
export type RejectReturnBody = Static<typeof RejectReturnBody>

export const ReturnItem = t.Object({
  product_id: t.Integer(),
  name: t.String({ description: 'Product name when the order was placed' }),
  quantity: t.Integer(),
  unit_price_cents: t.Integer({ description: "The order's price snapshot" }),
  refund_cents: t.Integer({ description: 'unit_price_cents × quantity' }),
})

export const Return = t.Object(
  {
    id: t.Integer(),
    order_id: t.Integer(),
    status: ReturnStatus,
    items: t.Array(ReturnItem),
    refund_cents: t.Integer({ description: "The lines' refunds: a record for the books, no payment is moved" }),
    reason: t.Union([t.String(), t.Null()]),
    note: t.Union([t.String(), t.Null()], { description: "The admin's note when received or rejected" }),
    created_at: t.String({ format: 'date-time' }),
    updated_at: t.String({ format: 'date-time' }),
  },
  { title: 'Return' },
)
export type Return = Static<typeof Return>

export const ReturnList = t.Object({ data: t.Array(Return) }, { title: 'ReturnList' })

export const ListReturnsQuery = t.Object({
  ...PaginationQuery,
  status: t.Optional(ReturnStatus),
})

/** A move the return lifecycle does not allow now: the return's status. */
export const ReturnConflict = t.Object(
  { error: t.String(), status: ReturnStatus },
  { title: 'ReturnConflict', description: 'The return is no longer `requested`' },
)
