#!/usr/bin/env bash
# make test: the whole suite against its own, freshly created database.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_bun
ensure_dependencies
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/order_api_test}"
export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
ensure_postgres "$TEST_DATABASE_URL"
ensure_redis "$TEST_REDIS_URL"
# The outage tests start and stop a private redis-server of their own.
command -v redis-server >/dev/null || apt_install redis-server
ensure_chromium
ensure_promtool

bun run --silent typecheck
# Concurrency tests fire hundreds of requests on a shared 2-core machine, and no test asserts a
# time: a minute each. (The flag, because Bun applies setDefaultTimeout from a preload file to
# the first test file only.)
bun test --timeout 60000 "$@"
