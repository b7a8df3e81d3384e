#!/usr/bin/env bash
# make bench: the benchmark against a fresh database of its own (not a test: nothing asserts a time).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_bun
ensure_dependencies
export BENCH_DATABASE_URL="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/order_api_bench}"
export BENCH_REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
ensure_postgres "$BENCH_DATABASE_URL"
ensure_redis "$BENCH_REDIS_URL"
ensure_pg_client # the backup phase runs pg_dump
JWT_SECRET=bench-only DATABASE_URL="$BENCH_DATABASE_URL" LOG_LEVEL=warn bun "${1:-bench/run.ts}"
