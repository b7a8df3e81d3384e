-- order_item_document: its one current definition. `bun run db:migrate` applies it after the migrations (db/functions.ts).
-- One order line as the API shows it: the one definition of a line, used by order_items_document
-- (reads, moves) and by the statements that place orders (whose lines are not visible to a
-- function reading order_items until the statement ends).
CREATE OR REPLACE FUNCTION order_item_document(i order_items) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_build_object(
    'product_id', i.product_id, 'name', i.name, 'unit_price_cents', i.unit_price_cents,
    'quantity', i.quantity, 'line_total_cents', i.line_total_cents)
$$;
