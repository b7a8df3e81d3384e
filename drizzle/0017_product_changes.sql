CREATE TABLE "product_changes" (
	"product_id" integer NOT NULL,
	"xid" "xid8" DEFAULT pg_current_xact_id() NOT NULL,
	"changed_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "product_changes_xid_idx" ON "product_changes" USING btree ("xid");--> statement-breakpoint
CREATE INDEX "product_changes_changed_at_idx" ON "product_changes" USING brin ("changed_at");