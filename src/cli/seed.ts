import { and, inArray, isNull } from 'drizzle-orm'
import { config } from '../config'
import { logger } from '../lib/logger'
import { upsertUser } from '../modules/auth/service'
import { db, sql } from '../db/client'
import { products } from '../db/schema'

const SAMPLE_PRODUCTS = [
  { name: 'Water Bottle', description: '24oz stainless steel', priceCents: 2499, inventory: 20 },
  { name: 'Coffee Mug', description: 'Ceramic, 350 ml', priceCents: 1299, inventory: 50 },
  { name: 'Canvas Tote Bag', description: 'Heavy cotton canvas', priceCents: 1899, inventory: 35 },
  { name: 'Notebook A5', description: 'Dotted, 192 pages', priceCents: 999, inventory: 120 },
  { name: 'Gel Pen Set', description: 'Pack of 6 colours', priceCents: 799, inventory: 200 },
  { name: 'Desk Lamp', description: 'LED, dimmable', priceCents: 3999, inventory: 15 },
  { name: 'Wireless Mouse', description: null, priceCents: 2999, inventory: 40 },
  { name: 'Mechanical Keyboard', description: 'Tenkeyless, brown switches', priceCents: 8999, inventory: 10 },
  { name: 'USB-C Cable', description: '2 m, braided', priceCents: 1499, inventory: 300 },
  { name: 'Laptop Stand', description: 'Aluminium, adjustable', priceCents: 4599, inventory: 25 },
  { name: 'Phone Case', description: 'Recycled plastic', priceCents: 1999, inventory: 0 },
  { name: 'Headphones', description: 'Over-ear, closed back', priceCents: 12999, inventory: 8 },
  { name: 'Vintage Poster', description: 'Discontinued print', priceCents: 2599, inventory: 3, isActive: false },
  { name: 'Winter Scarf', description: 'Out of season', priceCents: 2199, inventory: 30, isActive: false },
  { name: 'Sample Kit', description: 'Not for sale yet', priceCents: 0, inventory: 100, isActive: false },
]

/** Inserts the sample products that are not there yet (matched by name), so running twice adds nothing. */
async function seedProducts() {
  const names = SAMPLE_PRODUCTS.map((product) => product.name)
  const existing = await db
    .select({ name: products.name })
    .from(products)
    .where(and(inArray(products.name, names), isNull(products.deletedAt)))
  const present = new Set(existing.map((row) => row.name))
  const missing = SAMPLE_PRODUCTS.filter((product) => !present.has(product.name))
  if (missing.length) await db.insert(products).values(missing)
  return missing.length
}

async function seedAdmin() {
  if (!config.ADMIN_EMAIL || !config.ADMIN_PASSWORD) {
    logger.warn('ADMIN_EMAIL or ADMIN_PASSWORD is not set: no admin account seeded')
    return undefined
  }
  return upsertUser(config.ADMIN_EMAIL, config.ADMIN_PASSWORD, 'admin')
}

// Replicas that start together (a Swarm stack's API tasks each seed) take turns, so the
// check-then-insert above never adds a product twice.
const SEED_LOCK_ID = 7_246_002

try {
  const lock = await sql.reserve()
  try {
    await lock`SELECT pg_advisory_lock(${SEED_LOCK_ID})`
    const added = await seedProducts()
    const admin = await seedAdmin()
    logger.info({ productsAdded: added, admin: admin?.email }, 'seed complete')
  } finally {
    await lock`SELECT pg_advisory_unlock(${SEED_LOCK_ID})`.catch(() => {})
    lock.release()
  }
} catch (error) {
  logger.error({ err: error }, 'seed failed')
  process.exitCode = 1
} finally {
  await sql.end({ timeout: 5 })
}
