# Shared helpers for the make targets. Sourced, not run.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$ROOT/.data" # git-ignored: local Postgres/Redis data and logs live here

say() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# Sets URL_HOST and URL_PORT from a URL such as postgres://user:pass@host:5432/db.
parse_url() {
  local rest="${1#*://}"
  rest="${rest%%/*}"
  rest="${rest##*@}"
  URL_HOST="${rest%:*}"
  URL_PORT="${rest##*:}"
  [[ "$URL_PORT" == "$rest" || -z "$URL_PORT" ]] && { URL_HOST="$rest"; URL_PORT="$2"; }
  URL_HOST="${URL_HOST#[}"; URL_HOST="${URL_HOST%]}"
  [[ -z "$URL_HOST" ]] && URL_HOST=127.0.0.1
  return 0
}

answers() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

wait_for() {
  local host=$1 port=$2 what=$3
  for _ in $(seq 1 60); do answers "$host" "$port" && return 0; sleep 0.5; done
  die "$what did not come up on $host:$port (see $DATA/*.log)"
}

is_local() { [[ "$1" == 127.* || "$1" == localhost || "$1" == ::1 ]]; }

apt_install() {
  [[ $(id -u) -eq 0 ]] || die "$* is not installed; install it (e.g. sudo apt-get install $*) and run again"
  command -v apt-get >/dev/null || die "$* is not installed and apt-get is not available"
  say "installing $* with apt-get"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Runs a command as the unprivileged owner of the local Postgres (Postgres refuses to run as root).
as_pg_user() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ensure_bun() {
  if ! command -v bun >/dev/null; then
    say "installing Bun from npm"
    npm install --global --silent bun >/dev/null || die "could not install Bun with npm"
    export PATH="$(npm prefix --global)/bin:$PATH"
  fi
  command -v bun >/dev/null || die "Bun is installed but not on PATH"
}

ensure_dependencies() {
  (cd "$ROOT" && bun install --frozen-lockfile --silent) || die "bun install failed"
}

# Postgres at $1 (a URL), or a local server started under .data/ when nothing answers there.
ensure_postgres() {
  parse_url "$1" 5432
  answers "$URL_HOST" "$URL_PORT" && return 0
  is_local "$URL_HOST" || die "nothing answers at $URL_HOST:$URL_PORT (DATABASE_URL)"
  say "no Postgres on $URL_HOST:$URL_PORT: starting a local one in .data/postgres"
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  if [[ -z "$bin" ]]; then
    apt_install postgresql
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  fi
  if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir "$DATA" --shell /usr/sbin/nologin postgres
  fi
  mkdir -p "$DATA/postgres" "$DATA/run"
  [[ $(id -u) -eq 0 ]] && chown postgres "$DATA" "$DATA/postgres" "$DATA/run"
  chmod 700 "$DATA/postgres"
  if [[ ! -f "$DATA/postgres/PG_VERSION" ]]; then
    as_pg_user "$bin/initdb" -D "$DATA/postgres" -U postgres --auth=trust -E UTF8 --no-locale >"$DATA/initdb.log" \
      || die "initdb failed (see $DATA/initdb.log)"
  fi
  # A server of an earlier run that does not answer here (it was started in another network
  # namespace, or on another port) still holds the data directory: stop it first.
  if as_pg_user "$bin/pg_ctl" -D "$DATA/postgres" status >/dev/null 2>&1; then
    say "stopping the Postgres of an earlier run that does not answer here"
    as_pg_user "$bin/pg_ctl" -D "$DATA/postgres" -m immediate -w -t 30 stop >/dev/null || die "could not stop it"
  fi
  as_pg_user "$bin/pg_ctl" -D "$DATA/postgres" -l "$DATA/postgres.log" -w -t 30 start \
    -o "-p $URL_PORT -c listen_addresses=127.0.0.1 -k $DATA/run" >/dev/null \
    || die "Postgres did not start (see $DATA/postgres.log)"
  wait_for "$URL_HOST" "$URL_PORT" Postgres
}

# Redis at $1 (a URL), or a local server (no persistence) when nothing answers there.
ensure_redis() {
  parse_url "$1" 6379
  answers "$URL_HOST" "$URL_PORT" && return 0
  is_local "$URL_HOST" || die "nothing answers at $URL_HOST:$URL_PORT (REDIS_URL)"
  say "no Redis on $URL_HOST:$URL_PORT: starting a local one"
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p "$DATA/redis"
  # The same for a Redis of an earlier run that does not answer here.
  if [[ -f "$DATA/redis.pid" ]] && kill -0 "$(cat "$DATA/redis.pid")" 2>/dev/null \
    && [[ "$(cat "/proc/$(cat "$DATA/redis.pid")/comm" 2>/dev/null)" == redis-server* ]]; then
    kill "$(cat "$DATA/redis.pid")"
    for _ in $(seq 1 20); do kill -0 "$(cat "$DATA/redis.pid")" 2>/dev/null || break; sleep 0.2; done
  fi
  redis-server --daemonize yes --port "$URL_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$DATA/redis" --logfile "$DATA/redis.log" --pidfile "$DATA/redis.pid" >/dev/null \
    || die "Redis did not start (see $DATA/redis.log)"
  wait_for "$URL_HOST" "$URL_PORT" Redis
}

# Chromium for the browser tests: Debian's package, installed when missing and we are root.
# Where it can be neither found nor installed, the browser tests fail and say why.
ensure_chromium() {
  [[ -n "${CHROMIUM_PATH:-}" ]] && return 0
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null && return 0
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    apt_install chromium || say "could not install chromium: the browser tests will fail"
  else
    say "no Chromium found (apt-get install chromium, or set CHROMIUM_PATH): the browser tests will fail"
  fi
}

# promtool, for the alert rules' tests: from Debian's prometheus package, installed when missing
# and we are root. Where it can be neither found nor installed, those tests fail and say why.
ensure_promtool() {
  [[ -n "${PROMTOOL_PATH:-}" ]] && return 0
  command -v promtool >/dev/null && return 0
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    apt_install --no-install-recommends prometheus || say "could not install prometheus (promtool): the alert rule tests will fail"
  else
    say "no promtool found (apt-get install prometheus, or set PROMTOOL_PATH): the alert rule tests will fail"
  fi
}

# NAME's value in the project's .env (quotes dropped), or nothing: Bun reads .env itself, the
# scripts only need to know where the services are.
from_env_file() {
  [[ -f "$ROOT/.env" ]] || return 0
  local value
  value=$(grep -E "^$1=" "$ROOT/.env" | tail -n1 | cut -d= -f2- || true)
  value="${value%\"}"
  echo "${value#\"}"
}

# DATABASE_URL from the environment (or DATABASE_URL_FILE), else from .env, else the default.
database_url() {
  local url="${DATABASE_URL:-}"
  [[ -z "$url" && -n "${DATABASE_URL_FILE:-}" ]] && url=$(<"$DATABASE_URL_FILE")
  [[ -z "$url" ]] && url=$(from_env_file DATABASE_URL)
  echo "${url:-postgres://postgres@127.0.0.1:5432/order_api}"
}

# The database named by a postgres:// URL.
url_database() {
  local path="${1#*://}"
  path="${path#*/}"
  echo "${path%%\?*}"
}

# pg_dump, pg_restore and psql on PATH: the newest installed server's, or Debian's client package.
ensure_pg_client() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [[ -n "$bin" ]] && export PATH="$bin:$PATH"
  command -v pg_dump >/dev/null && command -v pg_restore >/dev/null && command -v psql >/dev/null && return 0
  apt_install postgresql-client
}
