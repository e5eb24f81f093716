#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback for the tests and scripts/replicas.sh.
#
#   scripts/postgres.sh start [PORT]   initdb in a temp dir, start on 127.0.0.1:PORT (55432), create
#                                      database "fanout", print its URL on stdout
#   scripts/postgres.sh stop [PORT]    stop that cluster and remove its directory
#
# Then: FANOUT_TEST_POSTGRES_URL=$(scripts/postgres.sh start) swift test --filter FanoutPostgresTests
# Needs Debian's `postgresql` package (binaries in /usr/lib/postgresql/*/bin). The server refuses to
# run as root, so as root the cluster belongs to the `postgres` user (runuser). Trust auth on
# loopback only: a test cluster, never a deployment.
set -euo pipefail
command=${1:-}
port=${2:-55432}
state=/tmp/fanoutd-postgres.$port
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
[ -n "$bindir" ] || { echo "postgres.sh: no PostgreSQL found (apt-get install postgresql)" >&2; exit 1; }
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$command" in
start)
    if [ -f "$state" ] && as_owner "$bindir/pg_ctl" -D "$(cat "$state")/data" status >/dev/null 2>&1; then
        echo "postgres://postgres@127.0.0.1:$port/fanout"
        exit 0
    fi
    dir=$(mktemp -d /tmp/fanoutd-pg.XXXXXX)
    [ "$(id -u)" -ne 0 ] || chown postgres "$dir"
    as_owner "$bindir/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 start \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" >/dev/null \
        || { cat "$dir/log" >&2; exit 1; }
    echo "$dir" >"$state"
    "$bindir/psql" -q -h 127.0.0.1 -p "$port" -U postgres -c 'create database fanout' >/dev/null
    echo "postgres://postgres@127.0.0.1:$port/fanout"
    ;;
stop)
    [ -f "$state" ] || exit 0
    dir=$(cat "$state")
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir" "$state"
    ;;
*)
    echo "usage: $0 start|stop [PORT]" >&2
    exit 2
    ;;
esac
