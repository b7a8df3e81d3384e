ALTER TABLE "outbox" ADD COLUMN "job_id" varchar(200);--> statement-breakpoint
ALTER TABLE "outbox" ADD COLUMN "done_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "outbox_unfinished_idx" ON "outbox" USING btree ("sent_at") WHERE "outbox"."done_at" IS NULL AND "outbox"."sent_at" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "outbox_done_idx" ON "outbox" USING btree ("done_at") WHERE "outbox"."done_at" IS NOT NULL;