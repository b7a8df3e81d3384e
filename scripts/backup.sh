#!/usr/bin/env bash
# make backup: a pg_dump of DATABASE_URL in custom format (-Fc) into BACKUP_DIR (default
# backups/); the file's path is the last line printed. The dump reads one consistent snapshot,
# so orders go on being placed meanwhile. BACKUP_DATABASE_URL (environment or .env), when set, is
# read instead: a streaming replica of the same database, so that the dump's long transaction is
# not on the primary (docs/backups.md). Arguments go to pg_dump as they are (--snapshot=…, say).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

url="${BACKUP_DATABASE_URL:-$(from_env_file BACKUP_DATABASE_URL)}"
url="${url:-$(database_url)}"
ensure_pg_client
dir="${BACKUP_DIR:-$ROOT/backups}"
mkdir -p "$dir"
name=$(url_database "$url")
file="$(cd "$dir" && pwd)/$name-$(date -u +%Y%m%dT%H%M%SZ).dump"
say "backing up $name to $file"
# Written under another name first: a dump cut short never looks like a backup. At the lowest
# CPU priority: most of pg_dump's own CPU is compression, which should yield to the services on
# a shared machine (the server's side of the dump cannot be reniced: docs/backups.md).
nice -n 19 pg_dump --format=custom --no-owner --no-privileges --dbname="$url" --file="$file.partial" "$@"
mv "$file.partial" "$file"
echo "$file"
