-- pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;--> statement-breakpoint
CREATE INDEX "products_name_trgm_idx" ON "products" USING gin ("name" gin_trgm_ops);--> statement-breakpoint
CREATE INDEX "products_description_trgm_idx" ON "products" USING gin ("description" gin_trgm_ops);--> statement-breakpoint
CREATE INDEX "products_name_asc_idx" ON "products" USING btree ("name","id") WHERE "products"."deleted_at" IS NULL;--> statement-breakpoint
CREATE INDEX "products_name_desc_idx" ON "products" USING btree ("name" DESC NULLS LAST,"id") WHERE "products"."deleted_at" IS NULL;--> statement-breakpoint
CREATE INDEX "products_price_cents_asc_idx" ON "products" USING btree ("price_cents","id") WHERE "products"."deleted_at" IS NULL;--> statement-breakpoint
CREATE INDEX "products_price_cents_desc_idx" ON "products" USING btree ("price_cents" DESC NULLS LAST,"id") WHERE "products"."deleted_at" IS NULL;--> statement-breakpoint
CREATE INDEX "products_created_at_asc_idx" ON "products" USING btree ("created_at","id") WHERE "products"."deleted_at" IS NULL;--> statement-breakpoint
CREATE INDEX "products_created_at_desc_idx" ON "products" USING btree ("created_at" DESC NULLS LAST,"id") WHERE "products"."deleted_at" IS NULL;