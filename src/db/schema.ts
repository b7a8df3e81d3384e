import { relations, sql } from 'drizzle-orm'
import {
  bigint,
  boolean,
  check,
  index,
  integer,
  pgEnum,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  varchar,
} from 'drizzle-orm/pg-core'

const createdAt = () => timestamp('created_at', { withTimezone: true }).notNull().defaultNow()
const updatedAt = () => timestamp('updated_at', { withTimezone: true }).notNull().defaultNow()

export const userRole = pgEnum('user_role', ['customer', 'admin'])
export const orderStatus = pgEnum('order_status', ['pending', 'confirmed', 'cancelled'])

export const users = pgTable(
  'users',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    email: varchar('email', { length: 254 }).notNull(),
    passwordHash: text('password_hash').notNull(),
    role: userRole('role').notNull().default('customer'),
    createdAt: createdAt(),
  },
  (table) => [
    // The API lower-cases emails itself; the index makes the rule hold for any writer.
    uniqueIndex('users_email_lower_key').on(sql`lower(${table.email})`),
  ],
)

export const products = pgTable(
  'products',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    name: varchar('name', { length: 200 }).notNull(),
    description: text('description'),
    priceCents: integer('price_cents').notNull(),
    inventory: integer('inventory').notNull().default(0),
    isActive: boolean('is_active').notNull().default(true),
    // Soft delete: order lines keep pointing at the row, the API stops showing it.
    deletedAt: timestamp('deleted_at', { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    check('products_price_cents_nonnegative', sql`${table.priceCents} >= 0`),
    check('products_inventory_nonnegative', sql`${table.inventory} >= 0`),
    index('products_listed_idx').on(table.isActive, table.id).where(sql`${table.deletedAt} IS NULL`),
  ],
)

export const orders = pgTable(
  'orders',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id),
    status: orderStatus('status').notNull().default('pending'),
    // 50 lines x 1000 units x int4 prices overflows int4; bigint stays exact well below 2^53.
    totalCents: bigint('total_cents', { mode: 'number' }).notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    check('orders_total_cents_nonnegative', sql`${table.totalCents} >= 0`),
    index('orders_user_id_idx').on(table.userId, table.id),
    index('orders_status_idx').on(table.status, table.id),
  ],
)

export const orderItems = pgTable(
  'order_items',
  {
    orderId: integer('order_id')
      .notNull()
      .references(() => orders.id, { onDelete: 'cascade' }),
    productId: integer('product_id')
      .notNull()
      .references(() => products.id),
    // Snapshots taken when the order was placed: later product edits do not rewrite history.
    name: varchar('name', { length: 200 }).notNull(),
    unitPriceCents: integer('unit_price_cents').notNull(),
    quantity: integer('quantity').notNull(),
    lineTotalCents: bigint('line_total_cents', { mode: 'number' }).notNull(),
  },
  (table) => [
    primaryKey({ name: 'order_items_pkey', columns: [table.orderId, table.productId] }),
    index('order_items_product_id_idx').on(table.productId),
    check('order_items_quantity_positive', sql`${table.quantity} > 0`),
    check('order_items_unit_price_nonnegative', sql`${table.unitPriceCents} >= 0`),
  ],
)

export const ordersRelations = relations(orders, ({ many }) => ({ items: many(orderItems) }))

export const orderItemsRelations = relations(orderItems, ({ one }) => ({
  order: one(orders, { fields: [orderItems.orderId], references: [orders.id] }),
}))
