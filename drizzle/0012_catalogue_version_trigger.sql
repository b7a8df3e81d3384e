-- Written by hand (drizzle-kit does not track functions or triggers).
-- Every write to the catalogue other than stock bumps catalogue_version in its own transaction:
-- product inserts, deletes and truncates, and updates naming any column beside inventory and
-- updated_at (all that orders and cancels write, so the order path never fires it). One bump per
-- statement, however many rows it writes.
INSERT INTO "catalogue_version" DEFAULT VALUES ON CONFLICT DO NOTHING;
--> statement-breakpoint
CREATE FUNCTION bump_catalogue_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE catalogue_version SET version = version + 1;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER products_catalogue_written
  AFTER INSERT OR DELETE OR UPDATE OF id, name, description, price_cents, is_active, deleted_at, created_at
  ON products FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
--> statement-breakpoint
CREATE TRIGGER products_catalogue_truncated
  AFTER TRUNCATE ON products FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
