ALTER TABLE "products" ADD COLUMN "low_stock_threshold" integer;--> statement-breakpoint
ALTER TABLE "products" ADD CONSTRAINT "products_low_stock_threshold_nonnegative" CHECK ("products"."low_stock_threshold" >= 0);--> statement-breakpoint

-- Written by hand (drizzle-kit does not track functions or triggers).
-- The threshold is shown with the product, so setting it is a catalogue write like the others.
DROP TRIGGER products_catalogue_written ON products;
--> statement-breakpoint
CREATE TRIGGER products_catalogue_written
  AFTER INSERT OR DELETE OR UPDATE OF id, name, description, price_cents, is_active, deleted_at, created_at, low_stock_threshold
  ON products FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
--> statement-breakpoint

-- A product as the API shows it: the data of product.low_stock events written by the order
-- statements (the same fields as toProduct in products/queries.ts; a test compares them).
CREATE OR REPLACE FUNCTION product_document(p products) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'id', p.id, 'name', p.name, 'description', p.description, 'price_cents', p.price_cents,
    'inventory', p.inventory, 'is_active', p.is_active, 'low_stock_threshold', p.low_stock_threshold,
    'created_at', iso_time(p.created_at), 'updated_at', iso_time(p.updated_at))
$$;
