import { and, eq, sql } from 'drizzle-orm'
import { db } from '../../db/client'
import { products } from '../../db/schema'
import { badRequest, notFound } from '../../lib/errors'
import { enqueue, outboxWritten } from '../../outbox/enqueue'
import { type AuditAction, recordEvent } from '../../outbox/events'
import { auditJob } from '../audit/service'
import { catalogueChanged } from './cache'
import { crossedLowStock, lowStockDetails } from './low-stock'
import type { CreateProductBody, Product, UpdateProductBody } from './model'
import { notDeleted, toProduct } from './queries'

// Admin writes to the catalogue. Each tells the catalogue cache once it has committed (here at
// once, other processes within moments), so whoever calls these need not remember to.

export const productNotFound = (id: number) => notFound(`Product ${id} not found`)

/** After an order or a cancel has committed: the cache drops those products' answers (cache.ts). */
export { stockChanged } from './cache'

/** For the order writer, which takes stock: the product.low_stock rule in SQL (low-stock.ts). */
export { lowStockAudits, lowStockCrossings, lowStockEvents } from './low-stock'

/** For the status changes that give stock back (cancels, received returns): restock.ts. */
export { restockSteps } from './restock'

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
        lowStockThreshold: body.low_stock_threshold ?? null,
      })
      .returning()
    const product = toProduct(row!)
    await enqueue(tx, [productAudit('product.created', actorId, product.id, { product })])
    await recordEvent(tx, 'product.created', product)
    return product
  })
  outboxWritten()
  await catalogueChanged()
  return product
}

const UPDATABLE = ['name', 'description', 'price_cents', 'inventory', 'is_active', 'low_stock_threshold'] as const

export async function updateProduct(actorId: number, id: number, body: UpdateProductBody): Promise<Product> {
  // Unknown fields are stripped before we get here, so `{"foo": 1}` arrives as `{}`.
  const changes = Object.fromEntries(
    UPDATABLE.filter((field) => body[field] !== undefined).map((field) => [field, body[field]]),
  )
  if (!Object.keys(changes).length) throw badRequest(`Provide at least one of: ${UPDATABLE.join(', ')}`)
  const product = await db.transaction(async (tx) => {
    // The inventory before, under the row lock the update takes anyway: no order moves it meanwhile.
    const [before] = await tx
      .select({ inventory: products.inventory })
      .from(products)
      .where(and(eq(products.id, id), notDeleted))
      .for('update')
    if (!before) throw productNotFound(id)
    const [row] = await tx
      .update(products)
      .set({
        name: body.name,
        description: body.description,
        priceCents: body.price_cents,
        inventory: body.inventory,
        isActive: body.is_active,
        lowStockThreshold: body.low_stock_threshold,
        updatedAt: sql`now()`,
      })
      .where(and(eq(products.id, id), notDeleted))
      .returning()
    if (!row) throw productNotFound(id)
    const product = toProduct(row)
    const lowStock = crossedLowStock(before.inventory, row)
    await enqueue(tx, [
      productAudit('product.updated', actorId, id, { changes }),
      ...(lowStock ? [productAudit('product.low_stock', actorId, id, lowStockDetails(row))] : []),
    ])
    await recordEvent(tx, 'product.updated', product)
    if (lowStock) await recordEvent(tx, 'product.low_stock', product)
    return product
  })
  outboxWritten()
  await catalogueChanged()
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
  await catalogueChanged()
}
