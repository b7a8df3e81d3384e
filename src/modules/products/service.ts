import { and, asc, count, eq, isNull, sql } from 'drizzle-orm'
import { db } from '../../db/client'
import { products } from '../../db/schema'
import { badRequest, notFound } from '../../lib/errors'
import { paged } from '../../lib/model'
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

export async function listProducts(options: { page: number; limit: number; offset: number; active?: boolean }) {
  const where = options.active === undefined ? notDeleted : and(notDeleted, eq(products.isActive, options.active))
  const [rows, [totals]] = await Promise.all([
    db.select().from(products).where(where).orderBy(asc(products.id)).limit(options.limit).offset(options.offset),
    db.select({ total: count() }).from(products).where(where),
  ])
  return paged(rows.map(toProduct), totals?.total ?? 0, options.page, options.limit)
}

export async function getProduct(id: number): Promise<Product> {
  const [row] = await db
    .select()
    .from(products)
    .where(and(eq(products.id, id), notDeleted))
  if (!row) throw productNotFound(id)
  return toProduct(row)
}

export async function createProduct(body: CreateProductBody): Promise<Product> {
  const [row] = await db
    .insert(products)
    .values({
      name: body.name,
      description: body.description ?? null,
      priceCents: body.price_cents,
      inventory: body.inventory ?? 0,
      isActive: body.is_active ?? true,
    })
    .returning()
  return toProduct(row!)
}

const UPDATABLE = ['name', 'description', 'price_cents', 'inventory', 'is_active'] as const

export async function updateProduct(id: number, body: UpdateProductBody): Promise<Product> {
  // Unknown fields are stripped before we get here, so `{"foo": 1}` arrives as `{}`.
  if (!UPDATABLE.some((field) => body[field] !== undefined))
    throw badRequest(`Provide at least one of: ${UPDATABLE.join(', ')}`)
  const [row] = await db
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
  return toProduct(row)
}

export async function deleteProduct(id: number): Promise<void> {
  const [row] = await db
    .update(products)
    .set({ deletedAt: sql`now()`, updatedAt: sql`now()` })
    .where(and(eq(products.id, id), notDeleted))
    .returning({ id: products.id })
  if (!row) throw productNotFound(id)
}
