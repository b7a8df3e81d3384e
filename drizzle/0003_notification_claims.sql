ALTER TABLE "notifications" ADD COLUMN "claimed_at" timestamp with time zone DEFAULT now() NOT NULL;--> statement-breakpoint
ALTER TABLE "notifications" ADD COLUMN "sent_at" timestamp with time zone;--> statement-breakpoint
-- Rows written before claims existed were written after their message was sent.
UPDATE "notifications" SET "sent_at" = "created_at" WHERE "sent_at" IS NULL;
