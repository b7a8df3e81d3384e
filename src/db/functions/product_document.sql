-- product_document: its one current definition. `bun run db:migrate` applies it after the migrations (db/functions.ts).
-- A product as the API shows it: the data of product.low_stock events written by the order
-- statements (the same fields as toProduct in products/queries.ts; a test compares them).
CREATE OR REPLACE FUNCTION product_document(p products) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'id', p.id, 'name', p.name, 'description', p.description, 'price_cents', p.price_cents,
    'inventory', p.inventory, 'is_active', p.is_active, 'low_stock_threshold', p.low_stock_threshold,
    'created_at', iso_time(p.created_at), 'updated_at', iso_time(p.updated_at))
$$;
