#!/usr/bin/env bash
# make dev: everything a fresh machine needs, then the worker and the API (in the foreground).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_bun
ensure_dependencies
[[ -f .env ]] || { say "creating .env from .env.example"; cp .env.example .env; }
export LOG_PRETTY="${LOG_PRETTY:-1}"

# The real environment wins over .env, as it does for Bun.
DATABASE_URL="${DATABASE_URL:-$(from_env_file DATABASE_URL)}"
REDIS_URL="${REDIS_URL:-$(from_env_file REDIS_URL)}"
PORT="${PORT:-$(from_env_file PORT)}"

ensure_postgres "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/order_api}"
ensure_redis "${REDIS_URL:-redis://127.0.0.1:6379}"
bun run --silent db:migrate
bun run --silent db:seed

# The worker runs beside the API and stops with it.
bun run --silent worker &
worker=$!
trap 'kill "$worker" 2>/dev/null; wait "$worker" 2>/dev/null' EXIT

say "API on http://localhost:${PORT:-3000}  ·  Swagger UI: http://localhost:${PORT:-3000}/swagger  ·  queues: http://localhost:${PORT:-3000}/admin/queues"
bun run --silent start
