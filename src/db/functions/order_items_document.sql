-- order_items_document: its one current definition. `bun run db:migrate` applies it after the migrations (db/functions.ts).
-- An order's lines as GET /api/orders/:id shows them, by product id.
CREATE OR REPLACE FUNCTION order_items_document(of_order integer) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT coalesce(jsonb_agg(order_item_document(i) ORDER BY i.product_id), '[]'::jsonb)
  FROM order_items i WHERE i.order_id = of_order
$$;
