import {
  Type as t,
  type SchemaOptions,
  type TBoolean,
  type TInteger,
  type TLiteral,
  type TSchema,
  type TUnion,
} from '@sinclair/typebox'
import { badRequest } from './errors'

// Request bodies use TypeBox's own types, not Elysia's `t`: Elysia's numeric types accept
// numeric strings, and the contract wants `"5"` where a number goes to be a 400.

const INT4_MAX = 2_147_483_647

export const ErrorResponse = t.Object(
  {
    error: t.String({ description: 'Human readable message' }),
    details: t.Optional(t.Array(t.Object({ path: t.String(), message: t.String() }))),
  },
  { title: 'Error', examples: [{ error: 'Product 7 not found' }] },
)

/**
 * Elysia types a handler's input from a schema's encoded side (the string); these transforms
 * hand the handler a decoded value, so they are declared by what the handler receives.
 */
export const decodesTo = <T extends TSchema>(schema: TSchema) => schema as unknown as T

/** A decimal integer in a path or query string, at most `max`: no signs, exponents, hex or spaces. */
const integerString = (pattern: string, example: string) => (name: string, max: number, description: string) =>
  decodesTo<TInteger>(
    t
      .Transform(t.String({ pattern, maxLength: 32, description, examples: [example] }))
      .Decode((value) => {
        const number = Number(value)
        if (number > max) throw badRequest(`${name} must be at most ${max}`)
        return number
      })
      .Encode(String),
  )

/** 1 or more (ids, pages). */
export const positiveIntegerString = integerString('^[1-9][0-9]*$', '1')
/** 0 or more (prices). */
export const nonNegativeIntegerString = integerString('^(0|[1-9][0-9]*)$', '1000')

/** `true` or `false` in a query string, as a boolean. */
export const booleanString = (description: string) =>
  decodesTo<TBoolean>(
    t
      .Transform(t.Union([t.Literal('true'), t.Literal('false')], { description }))
      .Decode((value) => value === 'true')
      .Encode((value) => (value ? 'true' : 'false')),
  )

export const IdParams = t.Object({ id: positiveIntegerString('id', INT4_MAX, 'Positive integer id') })

export const MAX_PAGE_SIZE = 50

export const PaginationQuery = {
  page: t.Optional(positiveIntegerString('page', 1_000_000_000, 'Page number, from 1 (default 1)')),
  // Any positive limit is accepted and capped at MAX_PAGE_SIZE, as the contract says.
  limit: t.Optional(
    decodesTo<TInteger>(
      t
        .Transform(
          t.String({
            pattern: '^[1-9][0-9]*$',
            maxLength: 32,
            description: `Page size (default 10, capped at ${MAX_PAGE_SIZE})`,
          }),
        )
        .Decode((value) => Math.min(Number(value), MAX_PAGE_SIZE))
        .Encode(String),
    ),
  ),
}

export const pageOf = <T extends TSchema>(item: T) =>
  t.Object({
    data: t.Array(item),
    page: t.Integer(),
    limit: t.Integer(),
    total: t.Integer(),
    total_pages: t.Integer(),
  })

export function pagination(query: { page?: number; limit?: number }) {
  const page = query.page ?? 1
  const limit = query.limit ?? 10
  return { page, limit, offset: (page - 1) * limit }
}

export function paged<T>(data: T[], total: number, page: number, limit: number) {
  return { data, page, limit, total, total_pages: Math.ceil(total / limit) }
}

/**
 * A page of a list, from two queries run at once: the page's rows, and the count of every row
 * (`[{ total }]`, the shape both `count()` in Drizzle and `count(*)::int AS total` give).
 */
export async function readPage<T>(
  rows: PromiseLike<T[]>,
  count: PromiseLike<readonly { total: number }[]>,
  { page, limit }: { page: number; limit: number },
) {
  const [data, [totals]] = await Promise.all([rows, count])
  return paged(data, totals?.total ?? 0, page, limit)
}

export const INT4 = { maximum: INT4_MAX }

/** A response without a body (204, 304), described. */
export const emptyResponse = (description: string) => t.Void({ description })

/** The error body for each status a route may answer with; the statuses stay literal, so a typed client sees them. */
export const errorResponses = <const Statuses extends readonly number[]>(...statuses: Statuses) =>
  Object.fromEntries(statuses.map((status) => [status, ErrorResponse])) as {
    [Status in Statuses[number]]: typeof ErrorResponse
  }

type Literals<T extends readonly string[]> = { -readonly [K in keyof T]: TLiteral<T[K]> }

/** A schema for one of a Postgres enum's values, taken from its Drizzle `pgEnum`, not retyped. */
export const enumOf = <const T extends readonly [string, ...string[]]>(values: T, options?: SchemaOptions) =>
  t.Union(
    values.map((value) => t.Literal(value)),
    options,
  ) as unknown as TUnion<Literals<T>>
