-- record_product_changes: its one current definition. `bun run db:migrate` applies it after the migrations (db/functions.ts).
-- The catalogue's change feed (product_changes): every statement that inserts, updates or
-- deletes products writes one row per product it touched, in its own transaction, whoever runs
-- it. Statement-level, over the transition table: a batch of orders over one product writes one
-- row. (A truncate bumps catalogue_version, which counts as every product changed.)
CREATE OR REPLACE FUNCTION record_product_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO product_changes (product_id) SELECT DISTINCT id FROM touched;
  RETURN NULL;
END
$$;
