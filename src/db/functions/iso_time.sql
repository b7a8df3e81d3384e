-- iso_time: its one current definition. `bun run db:migrate` applies it after the migrations (db/functions.ts).
-- A timestamp as the API writes it (JavaScript's toISOString): UTC, milliseconds, `Z`.
CREATE OR REPLACE FUNCTION iso_time(at timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;
