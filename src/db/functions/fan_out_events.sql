-- fan_out_events: its one current definition. `bun run db:migrate` applies it after the migrations (db/functions.ts).
-- Fan-out: every event gets one delivery per endpoint subscribed to it *now*, in the transaction
-- that writes the event, and each delivery an outbox row for the worker. So an event whose change
-- rolls back is never delivered, and one that commits reaches exactly the endpoints that were
-- subscribed when it committed. (`webhook.test` goes to one endpoint, written by the API.)
-- Each delivery's outbox row carries the trace context of the change that wrote its event, so
-- the delivery continues that change's trace. Queue and job names: outbox/definitions.ts (a
-- test compares them).
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
    RETURNING id, event_id
  )
  INSERT INTO outbox (queue, name, payload, trace_context)
  SELECT 'webhooks', 'webhook.delivery', jsonb_build_object('deliveryId', d.id),
    CASE WHEN event.trace_context IS NULL THEN NULL ELSE jsonb_build_array(event.trace_context) END
  FROM deliveries d JOIN new_events event ON event.id = d.event_id;
  RETURN NULL;
END
$$;
