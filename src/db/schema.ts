import { sql } from 'drizzle-orm'
import {
  bigint,
  boolean,
  check,
  customType,
  index,
  integer,
  jsonb,
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
export const webhookDeliveryStatus = pgEnum('webhook_delivery_status', ['pending', 'succeeded', 'failed'])
export const exportStatus = pgEnum('export_status', ['queued', 'running', 'done', 'failed'])
export const returnStatus = pgEnum('return_status', ['requested', 'received', 'rejected'])
export const orderStatus = pgEnum('order_status', [
  'pending',
  'confirmed',
  'processing',
  'shipped',
  'delivered',
  'cancelled',
])

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

/**
 * A signed-in device: each register or login starts one, and its access tokens name it (`sid`),
 * so revoking the row ends them. `expires_at` moves forward with each refresh.
 */
export const sessions = pgTable(
  'sessions',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    userAgent: varchar('user_agent', { length: 512 }),
    ip: varchar('ip', { length: 64 }),
    createdAt: createdAt(),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (table) => [index('sessions_user_id_idx').on(table.userId, table.id)],
)

/**
 * Every refresh token a session was given, by SHA-256 of the token (the token itself is never
 * stored). The unspent one is the session's current token; a spent one presented again is a
 * replay (reuse detection) and revokes the session.
 */
export const refreshTokens = pgTable(
  'refresh_tokens',
  {
    tokenHash: varchar('token_hash', { length: 64 }).primaryKey(),
    sessionId: integer('session_id')
      .notNull()
      .references(() => sessions.id, { onDelete: 'cascade' }),
    createdAt: createdAt(),
    spentAt: timestamp('spent_at', { withTimezone: true }),
  },
  (table) => [
    index('refresh_tokens_session_id_idx').on(table.sessionId),
    index('refresh_tokens_spent_at_idx')
      .on(table.spentAt)
      .where(sql`${table.spentAt} IS NOT NULL`),
  ],
)

/**
 * One row: bumped, in the writing transaction, by every write to the catalogue other than stock
 * (a trigger on products, migration 0012), so each API process's poll for product changes
 * learns exactly when cached searches and pages may have changed.
 */
export const catalogueVersion = pgTable(
  'catalogue_version',
  {
    single: boolean('single').primaryKey().default(true),
    version: bigint('version', { mode: 'number' }).notNull().default(0),
  },
  (table) => [check('catalogue_version_single', sql`${table.single}`)],
)

/** A 64-bit transaction id: it never wraps around (Postgres's `xid8`). */
const xid8 = customType<{ data: string }>({ dataType: () => 'xid8' })

/**
 * The catalogue's change feed: one row per product per statement that writes it, made by
 * statement-level triggers on products (migration 0018), whoever writes (the API, the worker, a
 * script, plain SQL). Each API process polls it by the writing transaction's id (productChangesSince
 * in products/queries.ts), so a poll costs what changed since the last, whatever the catalogue's
 * size. The worker's housekeeping deletes rows past PRODUCT_CHANGES_RETENTION_MINUTES.
 */
export const productChanges = pgTable(
  'product_changes',
  {
    productId: integer('product_id').notNull(),
    xid: xid8('xid')
      .notNull()
      .default(sql`pg_current_xact_id()`),
    changedAt: timestamp('changed_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [
    index('product_changes_xid_idx').on(table.xid),
    // Rows arrive in time order: a block range index finds the old ones for almost nothing.
    index('product_changes_changed_at_idx').using('brin', table.changedAt),
  ],
)

export const products = pgTable(
  'products',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    name: varchar('name', { length: 200 }).notNull(),
    description: text('description'),
    priceCents: integer('price_cents').notNull(),
    // Wider than any inventory an admin may set (INT4): cancels and returns add units back, and a
    // cancellable order must always cancel, however far an admin has restocked meanwhile.
    inventory: bigint('inventory', { mode: 'number' }).notNull().default(0),
    isActive: boolean('is_active').notNull().default(true),
    // At or below it the product is running low: the change that crosses it writes a
    // product.low_stock event (null: no alerts).
    lowStockThreshold: integer('low_stock_threshold'),
    // Soft delete: order lines keep pointing at the row, the API stops showing it.
    deletedAt: timestamp('deleted_at', { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    check('products_price_cents_nonnegative', sql`${table.priceCents} >= 0`),
    check('products_inventory_nonnegative', sql`${table.inventory} >= 0`),
    check('products_low_stock_threshold_nonnegative', sql`${table.lowStockThreshold} >= 0`),
    index('products_listed_idx')
      .on(table.isActive, table.id)
      .where(sql`${table.deletedAt} IS NULL`),
    // Catalogue search: `q` matches anywhere in the name or description, case-insensitively
    // (ILIKE '%…%'), which trigram indexes serve (pg_trgm, created by the same migration).
    index('products_name_trgm_idx').using('gin', sql`${table.name} gin_trgm_ops`),
    index('products_description_trgm_idx').using('gin', sql`${table.description} gin_trgm_ops`),
    // Catalogue sorts, each way, ties by id ascending. Inventory and updated_at stay unindexed:
    // every order writes them, and unindexed they keep those updates HOT (no index writes; the
    // table's fillfactor of 90, set in migration 0010, leaves the room on each page for it).
    ...(['name', 'priceCents', 'createdAt'] as const).flatMap((column) => {
      const name = table[column].name
      return [
        index(`products_${name}_asc_idx`)
          .on(table[column].asc(), table.id)
          .where(sql`${table.deletedAt} IS NULL`),
        index(`products_${name}_desc_idx`)
          .on(table[column].desc(), table.id)
          .where(sql`${table.deletedAt} IS NULL`),
      ]
    }),
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
    // Set when the order is shipped (the shipment) and delivered.
    carrier: varchar('carrier', { length: 100 }),
    trackingNumber: varchar('tracking_number', { length: 100 }),
    shippedAt: timestamp('shipped_at', { withTimezone: true }),
    deliveredAt: timestamp('delivered_at', { withTimezone: true }),
    /** Where the order goes, as the customer sent it (a snapshot; null when none was given). */
    shippingAddress: jsonb('shipping_address').$type<Record<string, string>>(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    check('orders_total_cents_nonnegative', sql`${table.totalCents} >= 0`),
    index('orders_user_id_idx').on(table.userId, table.id),
    index('orders_status_idx').on(table.status, table.id),
  ],
)

/**
 * Every status an order has been in, written in the same transaction as each change: the
 * placement first (from null), then each transition. A null actor is the worker.
 */
export const orderStatusHistory = pgTable(
  'order_status_history',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    orderId: integer('order_id')
      .notNull()
      .references(() => orders.id, { onDelete: 'cascade' }),
    fromStatus: orderStatus('from_status'),
    toStatus: orderStatus('to_status').notNull(),
    actorId: integer('actor_id').references(() => users.id, { onDelete: 'set null' }),
    actorRole: userRole('actor_role'),
    note: varchar('note', { length: 500 }),
    createdAt: createdAt(),
  },
  (table) => [index('order_status_history_order_id_idx').on(table.orderId, table.id)],
)

/**
 * What happened, for subscribers outside the service: written in the same transaction as the
 * change, one row per event, `payload` being the webhook's `data` (the order or product right
 * after the change). A trigger fans each one out to the subscribed webhook endpoints.
 */
export const events = pgTable(
  'events',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    type: varchar('type', { length: 64 }).notNull(),
    orderId: integer('order_id').references(() => orders.id, { onDelete: 'cascade' }),
    payload: jsonb('payload').notNull().default({}),
    createdAt: createdAt(),
    /** The W3C trace context of the request or job that wrote the event (null untraced): its deliveries go on with it. */
    traceContext: jsonb('trace_context').$type<Record<string, string>>(),
  },
  (table) => [index('events_order_id_idx').on(table.orderId), index('events_created_at_idx').on(table.createdAt)],
)

/**
 * Where events are sent. The signing secret is kept as issued (the server must sign with it);
 * it is returned only when created or rotated and never logged. After a rotation the previous
 * secret signs too, until `previous_secret_expires_at`.
 */
export const webhookEndpoints = pgTable('webhook_endpoints', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  url: varchar('url', { length: 2048 }).notNull(),
  events: varchar('events', { length: 64 }).array().notNull(),
  description: varchar('description', { length: 500 }),
  enabled: boolean('enabled').notNull().default(true),
  secret: varchar('secret', { length: 128 }).notNull(),
  previousSecret: varchar('previous_secret', { length: 128 }),
  previousSecretExpiresAt: timestamp('previous_secret_expires_at', { withTimezone: true }),
  // Deliveries that failed for good since the last success: at WEBHOOK_DISABLE_AFTER it is disabled.
  failedInARow: integer('failed_in_a_row').notNull().default(0),
  disabledReason: varchar('disabled_reason', { length: 200 }),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
})

/**
 * One event for one endpoint: written with the event (by the `events` fan-out trigger, in the
 * change's own transaction) for every endpoint subscribed at that moment, then attempted by the
 * worker until it succeeds or runs out of attempts. Its id is the `webhook-id` of every attempt.
 */
export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    endpointId: integer('endpoint_id')
      .notNull()
      .references(() => webhookEndpoints.id, { onDelete: 'cascade' }),
    eventId: bigint('event_id', { mode: 'number' })
      .notNull()
      .references(() => events.id, { onDelete: 'cascade' }),
    status: webhookDeliveryStatus('status').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    lastStatusCode: integer('last_status_code'),
    lastError: varchar('last_error', { length: 500 }),
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }).defaultNow(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    uniqueIndex('webhook_deliveries_event_endpoint_key').on(table.eventId, table.endpointId),
    index('webhook_deliveries_endpoint_idx').on(table.endpointId, table.id),
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

/**
 * Returns of delivered orders: requested by the customer (or an admin), then received (the units
 * go back to stock, once) or rejected. `user_id` is the order's owner; `refund_cents` is a record
 * for the shop's books (no payment moves).
 */
export const returns = pgTable(
  'returns',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    orderId: integer('order_id')
      .notNull()
      .references(() => orders.id, { onDelete: 'cascade' }),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id),
    status: returnStatus('status').notNull().default('requested'),
    refundCents: bigint('refund_cents', { mode: 'number' }).notNull(),
    reason: varchar('reason', { length: 500 }),
    note: varchar('note', { length: 500 }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    index('returns_order_id_idx').on(table.orderId, table.id),
    index('returns_status_idx').on(table.status, table.id),
  ],
)

/** A return's lines: units of one order line, priced from the order's snapshot. */
export const returnItems = pgTable(
  'return_items',
  {
    returnId: integer('return_id')
      .notNull()
      .references(() => returns.id, { onDelete: 'cascade' }),
    productId: integer('product_id')
      .notNull()
      .references(() => products.id),
    name: varchar('name', { length: 200 }).notNull(),
    unitPriceCents: integer('unit_price_cents').notNull(),
    quantity: integer('quantity').notNull(),
    refundCents: bigint('refund_cents', { mode: 'number' }).notNull(),
  },
  (table) => [
    primaryKey({ name: 'return_items_pkey', columns: [table.returnId, table.productId] }),
    check('return_items_quantity_positive', sql`${table.quantity} > 0`),
  ],
)

/**
 * Idempotency-Key records for POST /api/orders, written in the order's own transaction, so a
 * key and its order can never disagree. Keys are scoped to the user and live 24 hours.
 */
export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    userId: integer('user_id')
      .notNull()
      .references(() => users.id),
    key: varchar('key', { length: 255 }).notNull(),
    requestHash: varchar('request_hash', { length: 64 }).notNull(),
    responseStatus: integer('response_status').notNull(),
    responseBody: jsonb('response_body').notNull(),
    orderId: integer('order_id').references(() => orders.id),
    createdAt: createdAt(),
  },
  (table) => [
    primaryKey({ name: 'idempotency_keys_pkey', columns: [table.userId, table.key] }),
    index('idempotency_keys_created_at_idx').on(table.createdAt),
  ],
)

/**
 * Transactional outbox: a job is written here in the same transaction as the change that
 * causes it, then relayed to BullMQ under a job id named after the row, so a Redis outage delays
 * jobs but never loses them, and relaying a row twice is harmless. The reconciler marks a row
 * done once its effect is seen in the database, and hands it to BullMQ again when its job is
 * gone (Redis lost it) or spent while the effect is still missing.
 */
export const outbox = pgTable(
  'outbox',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    queue: varchar('queue', { length: 64 }).notNull(),
    name: varchar('name', { length: 64 }).notNull(),
    payload: jsonb('payload').notNull(),
    createdAt: createdAt(),
    sentAt: timestamp('sent_at', { withTimezone: true }),
    /** The BullMQ job that carries the row now (set when relayed). */
    jobId: varchar('job_id', { length: 200 }),
    doneAt: timestamp('done_at', { withTimezone: true }),
    /** The W3C trace contexts of the requests or jobs that wrote the row (null untraced): the relay and worker go on with them. */
    traceContext: jsonb('trace_context').$type<Record<string, string>[]>(),
  },
  (table) => [
    index('outbox_unsent_idx')
      .on(table.id)
      .where(sql`${table.sentAt} IS NULL`),
    index('outbox_unfinished_idx')
      .on(table.sentAt)
      .where(sql`${table.doneAt} IS NULL AND ${table.sentAt} IS NOT NULL`),
    index('outbox_done_idx')
      .on(table.doneAt)
      .where(sql`${table.doneAt} IS NOT NULL`),
  ],
)

/** Messages sent to customers; the dedupe key makes a re-run of the same job a no-op. */
export const notifications = pgTable(
  'notifications',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    dedupeKey: varchar('dedupe_key', { length: 128 }).notNull(),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id),
    orderId: integer('order_id').references(() => orders.id),
    transport: varchar('transport', { length: 16 }).notNull(),
    recipient: varchar('recipient', { length: 254 }).notNull(),
    subject: text('subject').notNull(),
    body: text('body').notNull(),
    // A run claims the row before sending and marks it sent after: a second, concurrent run
    // (a stalled job picked up while the first is alive) finds the claim and never sends.
    claimedAt: timestamp('claimed_at', { withTimezone: true }).notNull().defaultNow(),
    sentAt: timestamp('sent_at', { withTimezone: true }),
    createdAt: createdAt(),
  },
  (table) => [
    uniqueIndex('notifications_dedupe_key').on(table.dedupeKey),
    index('notifications_order_id_idx').on(table.orderId),
  ],
)

/** Who did what to which entity; job_key (the outbox id) makes a re-run of the same job a no-op. */
export const auditLogs = pgTable(
  'audit_logs',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    jobKey: varchar('job_key', { length: 64 }).notNull(),
    actorId: integer('actor_id'),
    action: varchar('action', { length: 64 }).notNull(),
    entity: varchar('entity', { length: 64 }).notNull(),
    entityId: integer('entity_id').notNull(),
    details: jsonb('details').notNull().default({}),
    createdAt: createdAt(),
  },
  (table) => [
    uniqueIndex('audit_logs_job_key').on(table.jobKey),
    index('audit_logs_entity_idx').on(table.entity, table.entityId),
  ],
)

/**
 * Files the worker builds for admins (CSV of order lines): asked for by the API, built in chunks
 * by the worker, served by any API replica from export_chunks until `expires_at`, then deleted by
 * housekeeping. `run_id` names the build that owns the file now: a stale run (a stalled job whose
 * replacement started over) can write nothing.
 */
export const exports = pgTable(
  'exports',
  {
    id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
    type: varchar('type', { length: 32 }).notNull(),
    status: exportStatus('status').notNull().default('queued'),
    /** What was asked for: `from`, `to` (ISO-8601, over orders' created_at) and `status`, when given. */
    filters: jsonb('filters').notNull().default({}),
    requestedBy: integer('requested_by').references(() => users.id, { onDelete: 'set null' }),
    runId: varchar('run_id', { length: 36 }),
    rowCount: integer('row_count').notNull().default(0),
    byteSize: bigint('byte_size', { mode: 'number' }).notNull().default(0),
    error: varchar('error', { length: 500 }),
    createdAt: createdAt(),
    startedAt: timestamp('started_at', { withTimezone: true }),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  },
  (table) => [index('exports_expires_at_idx').on(table.expiresAt)],
)

/** An export's file, in order: each chunk a run of whole CSV lines (the first starts with the header). */
export const exportChunks = pgTable(
  'export_chunks',
  {
    exportId: integer('export_id')
      .notNull()
      .references(() => exports.id, { onDelete: 'cascade' }),
    seq: integer('seq').notNull(),
    data: text('data').notNull(),
  },
  (table) => [primaryKey({ name: 'export_chunks_pkey', columns: [table.exportId, table.seq] })],
)
