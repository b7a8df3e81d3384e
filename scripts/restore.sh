#!/usr/bin/env bash
# make restore FILE=<path>: restores a `make backup` file into DATABASE_URL, creating the database
# when it does not exist. A database that already holds tables is refused unless FORCE=1 (its
# objects are then dropped and restored from the file).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

file="${FILE:-}"
[[ -n "$file" ]] || die "usage: make restore FILE=<path of a make backup file>"
[[ -f "$file" ]] || die "no such backup file: $file"
url=$(database_url)
ensure_pg_client
name=$(url_database "$url")
maintenance="${url%/*}/postgres"
[[ "$url" == *\?* ]] && maintenance="${maintenance}?${url#*\?}"

exists=$(psql "$maintenance" -Atqc "SELECT 1 FROM pg_database WHERE datname = '${name//\'/\'\'}'")
if [[ -z "$exists" ]]; then
  say "creating database $name"
  psql "$maintenance" -qc "CREATE DATABASE \"${name//\"/\"\"}\""
fi
tables=$(psql "$url" -Atqc "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
clean=()
if [[ "$tables" != 0 ]]; then
  [[ "${FORCE:-}" == 1 ]] || die "database $name already holds $tables tables; restore into an empty database, or set FORCE=1 to replace them"
  say "FORCE=1: dropping what $name holds before restoring"
  clean=(--clean --if-exists)
fi
say "restoring $file into $name"
pg_restore --no-owner --no-privileges --exit-on-error --single-transaction "${clean[@]}" --dbname="$url" "$file"
say "restored: run the worker, and any order still pending is confirmed (the reconciler resends work Redis no longer has)"
