-- bump_catalogue_version: its one current definition. `bun run db:migrate` applies it after the migrations (db/functions.ts).
-- The catalogue's version: any change to products (or a truncate) moves it, so every cached
-- catalogue answer in every API process knows it may be stale.
CREATE OR REPLACE FUNCTION bump_catalogue_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE catalogue_version SET version = version + 1;
  RETURN NULL;
END
$$;
