import { Type as t, type Static } from '@sinclair/typebox'
import { booleanString, enumOf, INT4, nonNegativeIntegerString, PaginationQuery } from '../../lib/model'

// Not blank, and no control characters (Postgres text cannot hold NUL at all).
const Name = t.String({
  minLength: 1,
  maxLength: 200,
  pattern: '^[^\\u0000-\\u001f]*[^\\s\\u0000-\\u001f][^\\u0000-\\u001f]*$',
  description: '1-200 characters, not blank',
  examples: ['Water Bottle'],
})
const Description = t.Union([t.String({ maxLength: 5000, pattern: '^[^\\u0000]*$' }), t.Null()], {
  examples: ['24oz stainless steel'],
})
const PriceCents = t.Integer({ minimum: 0, ...INT4, description: 'Price in cents', examples: [2499] })
const Inventory = t.Integer({ minimum: 0, ...INT4, description: 'Units in stock', examples: [20] })
const LowStockThreshold = t.Union([t.Integer({ minimum: 0, ...INT4 }), t.Null()], {
  description:
    'When inventory goes from above it to at or below it, a product.low_stock event is written; null (the default) turns alerts off',
  examples: [5],
})

export const Product = t.Object(
  {
    id: t.Integer(),
    name: t.String(),
    description: t.Union([t.String(), t.Null()]),
    price_cents: t.Integer(),
    inventory: t.Integer(),
    is_active: t.Boolean(),
    low_stock_threshold: t.Union([t.Integer(), t.Null()]),
    created_at: t.String({ format: 'date-time' }),
    updated_at: t.String({ format: 'date-time' }),
  },
  { title: 'Product' },
)
export type Product = Static<typeof Product>

export const CreateProductBody = t.Object({
  name: Name,
  description: t.Optional(Description),
  price_cents: PriceCents,
  inventory: t.Optional(Inventory),
  is_active: t.Optional(t.Boolean({ description: 'Default true' })),
  low_stock_threshold: t.Optional(LowStockThreshold),
})
export type CreateProductBody = Static<typeof CreateProductBody>

export const UpdateProductBody = t.Partial(CreateProductBody, {
  minProperties: 1,
  description: 'Any non-empty subset of the product fields',
})
export type UpdateProductBody = Static<typeof UpdateProductBody>

export const PRODUCT_SORTS = [
  'id',
  '-id',
  'name',
  '-name',
  'price_cents',
  '-price_cents',
  'created_at',
  '-created_at',
] as const
export type ProductSort = (typeof PRODUCT_SORTS)[number]

export const ListProductsQuery = t.Object({
  ...PaginationQuery,
  active: t.Optional(booleanString('Filter on is_active')),
  q: t.Optional(
    t.String({
      minLength: 1,
      maxLength: 100,
      description: 'Case-insensitive match anywhere in the name or description',
      examples: ['bottle'],
    }),
  ),
  min_price_cents: t.Optional(nonNegativeIntegerString('min_price_cents', INT4.maximum, 'Lowest price, in cents')),
  max_price_cents: t.Optional(nonNegativeIntegerString('max_price_cents', INT4.maximum, 'Highest price, in cents')),
  in_stock: t.Optional(booleanString('`true`: inventory > 0; `false`: inventory = 0')),
  sort: t.Optional(
    enumOf(PRODUCT_SORTS, { description: 'A field, `-` first for descending (default `id`); ties by id ascending' }),
  ),
})
export type ListProductsQuery = Static<typeof ListProductsQuery>
