#!/usr/bin/env bash
# A throw-away PostgreSQL 15 (Debian's postgresql-15 package) on loopback, for proving closeout on the
# oldest PostgreSQL major it supports. Used by .ci/run; usable by hand:
#
#   eval "$(bash scripts/pg15.sh start /tmp/closeout-pg15)"   # installs if missing, starts, prints the export line
#   bash scripts/test.sh tests/billing -q                     # now runs against PostgreSQL 15
#   bash scripts/pg15.sh stop /tmp/closeout-pg15              # stops the server and removes the folder
#
# start: installs postgresql-15 with apt-get when its binaries are missing (needs root), creates a cluster
# in DIR/data (trust authentication, UTF8, C.UTF-8 locale, durability off: it is a test server), owned by
# the `postgres` system user when run as root (PostgreSQL refuses to run as root), listening on 127.0.0.1
# only, on a free port, with its socket in DIR. It waits a bounded time until the server accepts
# connections and prints `export AIRFLOW_CONN_CLOSEOUT_WAREHOUSE='{...}'` on stdout (all progress goes
# to stderr). The tests' conftest uses that server instead of the embedded one.
# stop: stops the server (fast shutdown, bounded) and removes DIR. Safe to call when nothing runs.
#
# Environment: PG_MAJOR (default 15) picks another Debian major if its package is available; PG_BINDIR runs
# the binaries of any other PostgreSQL build instead (nothing is installed then; e.g. a newer major from a
# wheel, to try closeout on it by hand); PG_PORT picks the port; PG_START_TIMEOUT (seconds, default 60)
# bounds the wait.
set -euo pipefail

major="${PG_MAJOR:-15}"
bindir="${PG_BINDIR:-/usr/lib/postgresql/$major/bin}"
action="${1:-}"
dir="${2:-}"
if [ -z "$action" ] || [ -z "$dir" ]; then
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi

log() { echo "pg$major: $*" >&2; }

# run a command as the cluster's owner: `postgres` when we are root, ourselves otherwise
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

install_if_missing() {
  if [ -x "$bindir/postgres" ] && [ -x "$bindir/initdb" ]; then
    return
  fi
  if [ -n "${PG_BINDIR:-}" ]; then
    log "PG_BINDIR=$PG_BINDIR holds no postgres and initdb"
    exit 1
  fi
  if [ "$(id -u)" != 0 ]; then
    log "$bindir/postgres is missing and installing postgresql-$major needs root (apt-get install postgresql-$major)"
    exit 1
  fi
  log "installing postgresql-$major from the Debian archive"
  export DEBIAN_FRONTEND=noninteractive
  # Debian's postgresql-common creates and starts a default cluster on install; we do not want one
  # running beside ours (it would hold port 5432 and memory), so no cluster is created at install time.
  mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/closeout-ci.conf
  for attempt in 1 2 3; do
    if timeout 600 apt-get update -qq && timeout 900 apt-get install -y -qq --no-install-recommends \
         -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "postgresql-$major" >&2; then
      break
    fi
    if [ "$attempt" = 3 ]; then
      log "apt-get could not install postgresql-$major"
      exit 1
    fi
    log "apt-get failed (attempt $attempt), retrying in 10 s"
    sleep 10
  done
  [ -x "$bindir/postgres" ] || { log "postgresql-$major installed but $bindir/postgres is missing"; exit 1; }
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  install_if_missing
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    chown postgres: "$dir"
    chmod 700 "$dir"
  fi
  local data="$dir/data" port="${PG_PORT:-$(free_port)}"
  if [ ! -f "$data/PG_VERSION" ]; then
    as_owner "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    cat >>"$data/postgresql.conf" <<EOF
# closeout test server: loopback only, durability traded for speed (nothing here outlives the run)
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
  fi
  # a free port can be taken between our probe and the server's bind: try another one (unless PG_PORT is fixed)
  local attempt
  for attempt in 1 2 3; do
    log "starting $("$bindir/postgres" --version) on 127.0.0.1:$port (data in $data)"
    if as_owner "$bindir/pg_ctl" -D "$data" -l "$dir/server.log" -o "-p $port" -w -t "${PG_START_TIMEOUT:-60}" start >&2; then
      break
    fi
    if [ "$attempt" = 3 ] || [ -n "${PG_PORT:-}" ] || ! grep -q "Address already in use" "$dir/server.log" 2>/dev/null; then
      log "server did not start; its log:"
      cat "$dir/server.log" >&2 || true
      # pg_ctl may have given up waiting on a server that is still coming up: do not leave it behind
      as_owner "$bindir/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
      exit 1
    fi
    log "port $port was taken meanwhile; trying another"
    port="$(free_port)"
  done
  # pg_ctl -w waited for the postmaster; make sure TCP connections are accepted too (bounded)
  local deadline=$((SECONDS + ${PG_START_TIMEOUT:-60}))
  until "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "server not ready on 127.0.0.1:$port after ${PG_START_TIMEOUT:-60} s"
      cat "$dir/server.log" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
  local psql=("$bindir/psql" -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres)
  if [ "$("${psql[@]}" -tAc "SELECT count(*) FROM pg_database WHERE datname = 'closeout'")" = 0 ]; then
    "${psql[@]}" -c "CREATE DATABASE closeout" >&2
  fi
  echo "export AIRFLOW_CONN_CLOSEOUT_WAREHOUSE='{\"conn_type\": \"postgres\", \"host\": \"127.0.0.1\", \"port\": $port, \"login\": \"postgres\", \"schema\": \"closeout\"}'"
}

stop() {
  if [ -f "$dir/data/postmaster.pid" ] && [ -x "$bindir/pg_ctl" ]; then
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >&2 || {
      # a server that will not stop in time is killed: its pid is the first line of postmaster.pid
      pid="$(head -n1 "$dir/data/postmaster.pid" 2>/dev/null || true)"
      [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    }
  fi
  # remove only a folder this script made (it holds our cluster or our initdb log), never an arbitrary path
  if [ -f "$dir/data/PG_VERSION" ] || [ -f "$dir/initdb.log" ]; then
    rm -rf "$dir"
  fi
}

case "$action" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
