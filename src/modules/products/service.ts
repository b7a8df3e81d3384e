import { and, asc, count, eq, isNull, sql } from 'drizzle-orm'
import { db } from '../../db/client'
import { products } from '../../db/schema'
import { badRequest, notFound } from '../../lib/errors'
import { paged } from '../../lib/model'
import { auditJob, type AuditAction } from '../../jobs/definitions'
import { enqueue, outboxWritten, recordEvent } from '../../jobs/outbox'
import type { CreateProductBody, Product, UpdateProductBody } from './model'

type ProductRow = typeof products.$inferSelect

export const toProduct = (row: ProductRow): Product => ({
  id: row.id,
  name: row.name,
  description: row.description,
  price_cents: row.priceCents,
  inventory: row.inventory,
  is_active: row.isActive,
  created_at: row.createdAt.toISOString(),
  updated_at: row.updatedAt.toISOString(),
})

const notDeleted = isNull(products.deletedAt)
const productNotFound = (id: number) => notFound(`Product ${id} not found`)

// The public reads are the hottest queries: prepared once (SQL built once, planned once per
// connection), then executed with placeholders.
const listedWhere = (filtered: boolean) =>
  filtered ? and(notDeleted, eq(products.isActive, sql.placeholder('active'))) : notDeleted
const listQueries = [false, true].map((filtered) => ({
  page: db
    .select()
    .from(products)
    .where(listedWhere(filtered))
    .orderBy(asc(products.id))
    .limit(sql.placeholder('limit'))
    .offset(sql.placeholder('offset'))
    .prepare(filtered ? 'products_page_by_active' : 'products_page'),
  total: db
    .select({ total: count() })
    .from(products)
    .where(listedWhere(filtered))
    .prepare(filtered ? 'products_total_by_active' : 'products_total'),
}))
const productById = db
  .select()
  .from(products)
  .where(and(eq(products.id, sql.placeholder('id')), notDeleted))
  .prepare('product_by_id')

export async function listProducts(options: { page: number; limit: number; offset: number; active?: boolean }) {
  const queries = listQueries[options.active === undefined ? 0 : 1]!
  const values = { limit: options.limit, offset: options.offset, active: options.active }
  const [rows, [totals]] = await Promise.all([queries.page.execute(values), queries.total.execute(values)])
  return paged(rows.map(toProduct), totals?.total ?? 0, options.page, options.limit)
}

export async function getProduct(id: number): Promise<Product> {
  const [row] = await productById.execute({ id })
  if (!row) throw productNotFound(id)
  return toProduct(row)
}

const productAudit = (action: AuditAction, actorId: number, productId: number, details: Record<string, unknown>) =>
  auditJob({ actorId, action, entity: 'product', entityId: productId, details })

export async function createProduct(actorId: number, body: CreateProductBody): Promise<Product> {
  const product = await db.transaction(async (tx) => {
    const [row] = await tx
      .insert(products)
      .values({
        name: body.name,
        description: body.description ?? null,
        priceCents: body.price_cents,
        inventory: body.inventory ?? 0,
        isActive: body.is_active ?? true,
      })
      .returning()
    const product = toProduct(row!)
    await enqueue(tx, [productAudit('product.created', actorId, product.id, { product })])
    await recordEvent(tx, 'product.created', product)
    return product
  })
  outboxWritten()
  return product
}

const UPDATABLE = ['name', 'description', 'price_cents', 'inventory', 'is_active'] as const

export async function updateProduct(actorId: number, id: number, body: UpdateProductBody): Promise<Product> {
  // Unknown fields are stripped before we get here, so `{"foo": 1}` arrives as `{}`.
  const changes = Object.fromEntries(
    UPDATABLE.filter((field) => body[field] !== undefined).map((field) => [field, body[field]]),
  )
  if (!Object.keys(changes).length) throw badRequest(`Provide at least one of: ${UPDATABLE.join(', ')}`)
  const product = await db.transaction(async (tx) => {
    const [row] = await tx
      .update(products)
      .set({
        name: body.name,
        description: body.description,
        priceCents: body.price_cents,
        inventory: body.inventory,
        isActive: body.is_active,
        updatedAt: sql`now()`,
      })
      .where(and(eq(products.id, id), notDeleted))
      .returning()
    if (!row) throw productNotFound(id)
    const product = toProduct(row)
    await enqueue(tx, [productAudit('product.updated', actorId, id, { changes })])
    await recordEvent(tx, 'product.updated', product)
    return product
  })
  outboxWritten()
  return product
}

export async function deleteProduct(actorId: number, id: number): Promise<void> {
  await db.transaction(async (tx) => {
    const [row] = await tx
      .update(products)
      .set({ deletedAt: sql`now()`, updatedAt: sql`now()` })
      .where(and(eq(products.id, id), notDeleted))
      .returning()
    if (!row) throw productNotFound(id)
    await enqueue(tx, [productAudit('product.deleted', actorId, id, { name: row.name })])
    await recordEvent(tx, 'product.deleted', toProduct(row))
  })
  outboxWritten()
}
