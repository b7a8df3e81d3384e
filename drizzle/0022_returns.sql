CREATE TYPE "public"."return_status" AS ENUM('requested', 'received', 'rejected');--> statement-breakpoint
CREATE TABLE "return_items" (
	"return_id" integer NOT NULL,
	"product_id" integer NOT NULL,
	"name" varchar(200) NOT NULL,
	"unit_price_cents" integer NOT NULL,
	"quantity" integer NOT NULL,
	"refund_cents" bigint NOT NULL,
	CONSTRAINT "return_items_pkey" PRIMARY KEY("return_id","product_id"),
	CONSTRAINT "return_items_quantity_positive" CHECK ("return_items"."quantity" > 0)
);
--> statement-breakpoint
CREATE TABLE "returns" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "returns_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"order_id" integer NOT NULL,
	"user_id" integer NOT NULL,
	"status" "return_status" DEFAULT 'requested' NOT NULL,
	"refund_cents" bigint NOT NULL,
	"reason" varchar(500),
	"note" varchar(500),
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "return_items" ADD CONSTRAINT "return_items_return_id_returns_id_fk" FOREIGN KEY ("return_id") REFERENCES "public"."returns"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "return_items" ADD CONSTRAINT "return_items_product_id_products_id_fk" FOREIGN KEY ("product_id") REFERENCES "public"."products"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "returns" ADD CONSTRAINT "returns_order_id_orders_id_fk" FOREIGN KEY ("order_id") REFERENCES "public"."orders"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "returns" ADD CONSTRAINT "returns_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "returns_order_id_idx" ON "returns" USING btree ("order_id","id");--> statement-breakpoint
CREATE INDEX "returns_status_idx" ON "returns" USING btree ("status","id");--> statement-breakpoint

-- Written by hand (drizzle-kit does not track functions).
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
