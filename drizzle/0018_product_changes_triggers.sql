-- Written by hand (drizzle-kit does not track functions or triggers).
-- The catalogue's change feed (product_changes): every statement that inserts, updates or
-- deletes products writes one row per product it touched, in its own transaction, whoever runs
-- it. Statement-level, over the transition table: a batch of orders over one product writes one
-- row. (A truncate bumps catalogue_version, which counts as every product changed.)
CREATE FUNCTION record_product_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO product_changes (product_id) SELECT DISTINCT id FROM touched;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER products_changes_inserted AFTER INSERT ON products
  REFERENCING NEW TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION record_product_changes();
--> statement-breakpoint
CREATE TRIGGER products_changes_updated AFTER UPDATE ON products
  REFERENCING NEW TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION record_product_changes();
--> statement-breakpoint
CREATE TRIGGER products_changes_deleted AFTER DELETE ON products
  REFERENCING OLD TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION record_product_changes();
