#!/usr/bin/env bash
# make backup: a pg_dump of DATABASE_URL in custom format (-Fc) into BACKUP_DIR (default
# backups/); the file's path is the last line printed. The dump reads one consistent snapshot,
# so orders go on being placed meanwhile.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

url=$(database_url)
ensure_pg_client
dir="${BACKUP_DIR:-$ROOT/backups}"
mkdir -p "$dir"
name=$(url_database "$url")
file="$(cd "$dir" && pwd)/$name-$(date -u +%Y%m%dT%H%M%SZ).dump"
say "backing up $name to $file"
# Written under another name first: a dump cut short never looks like a backup.
pg_dump --format=custom --no-owner --no-privileges --dbname="$url" --file="$file.partial"
mv "$file.partial" "$file"
echo "$file"
