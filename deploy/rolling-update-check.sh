#!/usr/bin/env bash
# Proves a rolling deploy loses nothing: deploys deploy/stack.yml on this machine's swarm (a
# single-node swarm is a real one), runs orders and product reads at 32 connections through the
# entry point, and meanwhile force-updates the API, then the worker, then rolls the API back.
# Expects no failed request (no 5xx, no connection error), every placed order confirmed, and
# units conserved. Not part of make test.
# Usage: deploy/rolling-update-check.sh   (STACK=orderapi-check PUBLISH_PORT=18080; KEEP=1 leaves the stack up)
set -euo pipefail
cd "$(dirname "$0")/.."
STACK="${STACK:-orderapi-check}"
PORT="${PUBLISH_PORT:-18080}"
BASE="http://127.0.0.1:$PORT"
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0

[[ "$(docker info --format '{{.Swarm.LocalNodeState}}')" == active ]] || { say "docker swarm init"; docker swarm init --advertise-addr 127.0.0.1 >/dev/null; }
say "building order-api:latest"
docker build -q -t order-api:latest . >/dev/null
for secret in order_api_jwt_secret order_api_admin_password; do
  docker secret inspect "$secret" >/dev/null 2>&1 || openssl rand -hex 32 | tr -d '\n' | docker secret create "$secret" - >/dev/null
done
cleanup() { [[ "${KEEP:-}" == 1 ]] || { say "removing the stack"; docker stack rm "$STACK" >/dev/null; }; }
trap cleanup EXIT
say "deploying stack $STACK on port $PORT"
ADMIN_EMAIL=admin@example.com PUBLISH_PORT=$PORT docker stack deploy -c deploy/stack.yml "$STACK" >/dev/null

replicas_up() { docker service ls --filter "name=${STACK}_$1" --format '{{.Replicas}}' | grep -qx "$2/$2"; }
for _ in $(seq 1 120); do
  replicas_up api 3 && replicas_up worker 2 && curl -fs "$BASE/health/ready" >/dev/null && break
  sleep 2
done
curl -fs "$BASE/health/ready" >/dev/null || die "the stack did not become ready (docker service ps ${STACK}_api)"

json() { bun -e "const v = JSON.parse(await Bun.stdin.text()); console.log($1)"; }
post() { curl -fsS -X POST "$BASE$1" -H 'content-type: application/json' ${3:+-H "authorization: Bearer $3"} -d "$2"; }
# An admin of the check's own: a registered user promoted inside an API task (bun run user:role).
admin_email="rolling-admin-$(date +%s%N)@example.com"
post /api/auth/register "{\"email\":\"$admin_email\",\"password\":\"password123\"}" >/dev/null
docker exec "$(docker ps -q -f "name=${STACK}_api" | head -n1)" bun run --silent user:role "$admin_email" admin >/dev/null
admin=$(post /api/auth/login "{\"email\":\"$admin_email\",\"password\":\"password123\"}" | json v.token)
STOCK=10000000
product=$(post /api/products "{\"name\":\"Rolling check $(date +%s)\",\"price_cents\":100,\"inventory\":$STOCK}" "$admin" | json v.id)
tokens=()
for i in 1 2 3 4; do
  tokens+=("$(post /api/auth/register "{\"email\":\"rolling-$i-$(date +%s%N)@example.com\",\"password\":\"password123\"}" | json v.token)")
done

say "load: 16 connections ordering, 16 reading"
out=$(mktemp)
bun deploy/rolling-load.ts "$BASE" "$product" "${tokens[@]}" > "$out" &
load=$!
sleep 5
say "docker service update --force ${STACK}_api"
docker service update --force --detach=false --quiet "${STACK}_api" >/dev/null
say "docker service update --force ${STACK}_worker"
docker service update --force --detach=false --quiet "${STACK}_worker" >/dev/null
say "docker service rollback ${STACK}_api"
docker service rollback --detach=false --quiet "${STACK}_api" >/dev/null
sleep 5
kill -TERM "$load"
wait "$load"

summary=$(cat "$out")
placed=$(echo "$summary" | json v.placed.length)
failed=$(echo "$summary" | json "Object.entries(v.statuses).filter(([s]) => Number(s) >= 500).reduce((n, [, c]) => n + c, 0) + v.connectionErrors")
echo "requests by status: $(echo "$summary" | json 'JSON.stringify(v.statuses)'); connection errors: $(echo "$summary" | json v.connectionErrors)"
psql_() { docker exec -e PGPASSWORD="${POSTGRES_PASSWORD:-postgres}" "$(docker ps -q -f "name=${STACK}_postgres" | head -n1)" psql -U postgres -d order_api -Atc "$1"; }
ids=$(echo "$summary" | json "v.placed.join(',')")
for _ in $(seq 1 60); do
  pending=$(psql_ "SELECT count(*) FROM orders WHERE id IN ($ids) AND status <> 'confirmed'")
  [[ "$pending" == 0 ]] && break
  sleep 2
done
left=$(psql_ "SELECT inventory FROM products WHERE id = $product")
sold=$(psql_ "SELECT coalesce(sum(quantity), 0) FROM order_items WHERE product_id = $product")
echo "orders placed: $placed; not confirmed after the updates: $pending"
echo "units: $sold sold + $left left = $((sold + left)) of $STOCK"
[[ "$failed" == 0 && "$pending" == 0 && $((sold + left)) == "$STOCK" && "$placed" -gt 0 ]] || die "the rolling update lost something"
echo "ok: 0 failed requests, every order confirmed, units conserved"
