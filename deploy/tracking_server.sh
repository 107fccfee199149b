#!/usr/bin/env bash
# A team's MLflow tracking server: PostgreSQL (backend and user store) + `mlflow server` with basic auth
# and proxied artifacts, all in one data folder. Usage:
#   deploy/tracking_server.sh start|stop|status    the whole server
#   deploy/tracking_server.sh db-start|db-stop     PostgreSQL alone (an outage drill: the server stays up)
# Settings (environment):
#   MLFLOW_AUTH_ADMIN_PASSWORD or TRACKING_ADMIN_PASSWORD_FILE   the admin password (no default; required)
#   TRACKING_DIR        data folder (default .tracking-server): postgres/, artifacts/, logs, pid file
#   TRACKING_HOST       address mlflow listens on (default 127.0.0.1; a team's host puts a TLS proxy in front)
#   TRACKING_PORT       mlflow's port (default 5000)
#   TRACKING_PG_PORT    PostgreSQL's port, always on 127.0.0.1 (default 5433)
#   TRACKING_ARTIFACTS  where artifacts go (default $TRACKING_DIR/artifacts; or s3://bucket/prefix)
#   PYTHON              the Python with mlflow[auth] and psycopg2 (default .venv/bin/python)
#   PG_BIN              PostgreSQL's bin folder (default: the newest /usr/lib/postgresql/*/bin, else PATH)
#   MLFLOW_SERVER_ENABLE_JOB_EXECUTION  MLflow's GenAI job runner (default false here: this project submits no
#                       GenAI jobs, and the runner's huey worker processes would take CPU from training)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$(mkdir -p "${TRACKING_DIR:-.tracking-server}" && cd "${TRACKING_DIR:-.tracking-server}" && pwd)
HOST=${TRACKING_HOST:-127.0.0.1}
PORT=${TRACKING_PORT:-5000}
PG_PORT=${TRACKING_PG_PORT:-5433}
ARTIFACTS=${TRACKING_ARTIFACTS:-$DIR/artifacts}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
START_TIMEOUT=${TRACKING_START_TIMEOUT:-90}
PGDATA="$DIR/postgres"
PGPASSFILE="$DIR/pgpass"
export PGPASSFILE
DB_USER=mlflow

fail() { echo "tracking-server: error: $*" >&2; exit 1; }

pg_bin() {
  if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
  local newest
  newest=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$newest" ]; then echo "$newest"; return; fi
  command -v pg_ctl >/dev/null || fail "PostgreSQL is not installed (apt-get install -y postgresql); or set PG_BIN"
  dirname "$(command -v pg_ctl)"
}
BIN=$(pg_bin)

# PostgreSQL refuses to run as root: then its server commands run as the `postgres` user.
as_db_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_running() { as_db_owner "$BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }

psql_query() { "$BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$DB_USER" -d postgres -tAc "$1"; }

init_cluster() {
  [ -f "$PGDATA/PG_VERSION" ] && return
  local password pwfile
  password=$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
  (umask 077 && printf '127.0.0.1:*:*:%s:%s\n' "$DB_USER" "$password" >"$PGPASSFILE")
  mkdir -p "$PGDATA"
  pwfile="$DIR/.initdb-password"  # beside the cluster: initdb wants an empty folder
  (umask 077 && printf '%s\n' "$password" >"$pwfile")
  if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$PGDATA" "$pwfile"; fi
  as_db_owner "$BIN/initdb" -D "$PGDATA" -U "$DB_USER" --pwfile="$pwfile" --auth=scram-sha-256 -E UTF8 \
    >"$DIR/initdb.log" 2>&1 || { rm -f "$pwfile"; fail "initdb failed; see $DIR/initdb.log"; }
  rm -f "$pwfile"
}

db_start() {
  init_cluster
  if ! pg_running; then
    as_db_owner "$BIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 30 start \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=''" >/dev/null \
      || fail "PostgreSQL did not start; see $PGDATA/server.log"
  fi
  local db
  for db in mlflow mlflow_auth; do
    if [ "$(psql_query "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
      psql_query "CREATE DATABASE $db" >/dev/null
    fi
  done
}

db_stop() {
  if [ -d "$PGDATA" ] && pg_running; then as_db_owner "$BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null; fi
}

admin_password() {
  if [ -n "${MLFLOW_AUTH_ADMIN_PASSWORD:-}" ]; then return; fi
  [ -n "${TRACKING_ADMIN_PASSWORD_FILE:-}" ] \
    || fail "no admin password: set MLFLOW_AUTH_ADMIN_PASSWORD or TRACKING_ADMIN_PASSWORD_FILE (a file outside git)"
  [ -r "$TRACKING_ADMIN_PASSWORD_FILE" ] || fail "TRACKING_ADMIN_PASSWORD_FILE=$TRACKING_ADMIN_PASSWORD_FILE is not readable"
  MLFLOW_AUTH_ADMIN_PASSWORD=$(head -n 1 "$TRACKING_ADMIN_PASSWORD_FILE")
  [ -n "$MLFLOW_AUTH_ADMIN_PASSWORD" ] || fail "TRACKING_ADMIN_PASSWORD_FILE=$TRACKING_ADMIN_PASSWORD_FILE is empty"
  export MLFLOW_AUTH_ADMIN_PASSWORD
}

write_auth_config() {
  (umask 077 && cat >"$DIR/basic_auth.ini" <<EOF
[mlflow]
default_permission = READ
database_uri = postgresql+psycopg2://$DB_USER@127.0.0.1:$PG_PORT/mlflow_auth
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
EOF
  )
}

# The auth app's CSRF key: from the environment (several servers share one), else made once in the data folder.
flask_secret() {
  if [ -n "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]; then return; fi
  [ -s "$DIR/flask_secret" ] || (umask 077 && head -c 32 /dev/urandom | base64 >"$DIR/flask_secret")
  MLFLOW_FLASK_SERVER_SECRET_KEY=$(cat "$DIR/flask_secret")
  export MLFLOW_FLASK_SERVER_SECRET_KEY
}

server_pid() { [ -f "$DIR/mlflow.pid" ] && kill -0 "$(cat "$DIR/mlflow.pid")" 2>/dev/null && cat "$DIR/mlflow.pid"; }

healthy() { curl -fsS -m 2 "http://$HOST:$PORT/health" >/dev/null 2>&1; }

start() {
  admin_password
  flask_secret
  local started=$SECONDS
  if server_pid >/dev/null; then fail "already running (pid $(cat "$DIR/mlflow.pid")); stop it first"; fi
  db_start
  write_auth_config
  [[ "$ARTIFACTS" == *://* ]] || mkdir -p "$ARTIFACTS"
  MLFLOW_AUTH_CONFIG_PATH="$DIR/basic_auth.ini" \
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}" setsid "$PYTHON" -m mlflow server \
    --backend-store-uri "postgresql+psycopg2://$DB_USER@127.0.0.1:$PG_PORT/mlflow" \
    --artifacts-destination "$ARTIFACTS" --host "$HOST" --port "$PORT" --app-name basic-auth \
    >"$DIR/mlflow.log" 2>&1 </dev/null &
  echo $! >"$DIR/mlflow.pid"
  until healthy; do
    if ! server_pid >/dev/null || (( SECONDS - started > START_TIMEOUT )); then
      tail -n 20 "$DIR/mlflow.log" >&2
      stop
      fail "mlflow server did not answer http://$HOST:$PORT/health within ${START_TIMEOUT}s; log: $DIR/mlflow.log"
    fi
    sleep 0.5
  done
  echo "tracking server up in $(( SECONDS - started ))s: MLFLOW_TRACKING_URI=http://$HOST:$PORT (artifacts: $ARTIFACTS)"
}

stop() {
  local pid
  if pid=$(server_pid); then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$DIR/mlflow.pid"
  db_stop
  echo "tracking server stopped"
}

status() {
  if pg_running; then echo "postgres: running on 127.0.0.1:$PG_PORT"; else echo "postgres: stopped"; fi
  if healthy; then echo "mlflow: up at http://$HOST:$PORT"; else echo "mlflow: down"; fi
  pg_running && healthy
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  db-start) db_start ;;
  db-stop) db_stop ;;
  *) echo "usage: $0 start|stop|status|db-start|db-stop" >&2; exit 2 ;;
esac
