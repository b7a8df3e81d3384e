-- Written by hand (drizzle-kit does not model functions or triggers).

-- A timestamp as the API writes it (JavaScript's toISOString): UTC, milliseconds, `Z`.
CREATE OR REPLACE FUNCTION iso_time(at timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;
--> statement-breakpoint

-- An order's lines as GET /api/orders/:id shows them, by product id.
CREATE OR REPLACE FUNCTION order_items_document(of_order integer) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT coalesce(jsonb_agg(jsonb_build_object(
      'product_id', product_id, 'name', name, 'unit_price_cents', unit_price_cents,
      'quantity', quantity, 'line_total_cents', line_total_cents) ORDER BY product_id), '[]'::jsonb)
  FROM order_items WHERE order_id = of_order
$$;
--> statement-breakpoint

-- An order as GET /api/orders/:id shows it: the `data` of its webhook events, written in the
-- statement that changes it (from the row that statement returns).
CREATE OR REPLACE FUNCTION order_document(o orders, items jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'id', o.id, 'user_id', o.user_id, 'status', o.status, 'total_cents', o.total_cents,
    'items', items,
    'shipment', CASE WHEN o.carrier IS NOT NULL AND o.tracking_number IS NOT NULL AND o.shipped_at IS NOT NULL
      THEN jsonb_build_object('carrier', o.carrier, 'tracking_number', o.tracking_number, 'shipped_at', iso_time(o.shipped_at))
      END,
    'delivered_at', iso_time(o.delivered_at),
    'created_at', iso_time(o.created_at),
    'updated_at', iso_time(o.updated_at))
$$;
--> statement-breakpoint

-- Fan-out: every event gets one delivery per endpoint subscribed to it *now*, in the transaction
-- that writes the event, and each delivery an outbox row for the worker. So an event whose change
-- rolls back is never delivered, and one that commits reaches exactly the endpoints that were
-- subscribed when it committed. (`webhook.test` goes to one endpoint, written by the API.)
CREATE OR REPLACE FUNCTION fan_out_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  WITH deliveries AS (
    INSERT INTO webhook_deliveries (endpoint_id, event_id)
    SELECT endpoint.id, event.id
    FROM new_events event
    JOIN webhook_endpoints endpoint
      ON endpoint.enabled AND endpoint.events && ARRAY[event.type, '*']::varchar[]
    WHERE event.type <> 'webhook.test'
    RETURNING id
  )
  INSERT INTO outbox (queue, name, payload)
  SELECT 'webhooks', 'webhook.delivery', jsonb_build_object('deliveryId', id) FROM deliveries;
  RETURN NULL;
END
$$;
--> statement-breakpoint

CREATE TRIGGER events_fan_out
AFTER INSERT ON events
REFERENCING NEW TABLE AS new_events
FOR EACH STATEMENT EXECUTE FUNCTION fan_out_events();
