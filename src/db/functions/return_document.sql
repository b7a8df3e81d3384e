-- return_document: its one current definition. `bun run db:migrate` applies it after the migrations (db/functions.ts).
-- A return as the API shows it: responses, and the data of its return.* webhook events.
CREATE OR REPLACE FUNCTION return_document(r returns) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'id', r.id, 'order_id', r.order_id, 'status', r.status,
    'items', (
      SELECT coalesce(jsonb_agg(jsonb_build_object(
        'product_id', i.product_id, 'name', i.name, 'quantity', i.quantity,
        'unit_price_cents', i.unit_price_cents, 'refund_cents', i.refund_cents) ORDER BY i.product_id), '[]'::jsonb)
      FROM return_items i WHERE i.return_id = r.id),
    'refund_cents', r.refund_cents, 'reason', r.reason, 'note', r.note,
    'created_at', iso_time(r.created_at), 'updated_at', iso_time(r.updated_at))
$$;
