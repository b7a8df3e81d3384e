-- order_document: its one current definition. `bun run db:migrate` applies it after the migrations (db/functions.ts).
-- An order as GET /api/orders/:id shows it: every response that carries an order, and the data
-- of its webhook events, written in the statement that changes it (from the row it returns).
CREATE OR REPLACE FUNCTION order_document(o orders, items jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'id', o.id, 'user_id', o.user_id, 'status', o.status, 'total_cents', o.total_cents,
    'items', items,
    'shipment', CASE WHEN o.carrier IS NOT NULL AND o.tracking_number IS NOT NULL AND o.shipped_at IS NOT NULL
      THEN jsonb_build_object('carrier', o.carrier, 'tracking_number', o.tracking_number, 'shipped_at', iso_time(o.shipped_at))
      END,
    'shipping_address', o.shipping_address,
    'delivered_at', iso_time(o.delivered_at),
    'created_at', iso_time(o.created_at),
    'updated_at', iso_time(o.updated_at))
$$;
