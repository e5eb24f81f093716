#!/usr/bin/env bash
# Three replicas on one PostgreSQL behind HAProxy (issue 9): restarts and a SIGKILL lose nothing.
#
#   scripts/replicas.sh [path/to/fanoutd]
#
# On loopback only:
#   - PostgreSQL: $FANOUT_TEST_POSTGRES_URL (CI's cluster) or one of its own (scripts/postgres.sh
#     on port 55433, stopped at exit); a fresh schema per run;
#   - a counting upstream (scripts/replicas_load.py upstream) and replicas a, b, c sharing the
#     store (jobs.lease_s=3), behind HAProxy health-checking /readyz;
#   - scripts/replicas_load.py run: detached jobs with an Idempotency-Key submitted straight to
#     each replica (a's outlive the run), followed through HAProxy, resumed after every cut, and
#     retried with the same key through HAProxy.
# Meanwhile: SIGTERM b, restart it; SIGTERM c, restart it; SIGKILL a, restart it. The load client
# then checks every job ended, every reader saw each line exactly once in seq order, a's jobs
# ended `interrupted`, every retry answered the same job and no upstream path was hit twice.
# Bounded: about a minute; the load client gives up after 150 s.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

bin=$(scripts/release-binary.sh replicas "$@")
command -v haproxy >/dev/null || { echo "replicas: haproxy is not installed (apt-get install haproxy)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/fanoutd-replicas.XXXXXX")
script=replicas
# shellcheck source=scripts/replica-lib.sh
. scripts/replica-lib.sh
declare -A pid=()
other_pids=()
own_postgres=""
schema=""
url=""
cleanup() {
    local status=$?
    for p in "${pid[@]}" "${other_pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "$own_postgres" ]; then
        scripts/postgres.sh stop "$own_postgres" || true
    elif [ -n "$schema" ] && command -v psql >/dev/null; then
        psql -q "$url" -c "drop schema if exists $schema cascade" >/dev/null 2>&1 || true
    fi
    report_and_exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

url=${FANOUT_TEST_POSTGRES_URL:-}
schema="r_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
if [ -z "$url" ]; then
    own_postgres=55433
    url=$(scripts/postgres.sh start "$own_postgres")
fi
case "$url" in *\?*) store="$url&schema=$schema" ;; *) store="$url?schema=$schema" ;; esac

read -r port_a port_b port_c port_fe port_up < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
EOF
)
declare -A port=([a]=$port_a [b]=$port_b [c]=$port_c)

python3 scripts/replicas_load.py upstream --port "$port_up" --counts "$work/counts.json" >>"$work/upstream.log" 2>&1 &
other_pids+=($!)


start_replica() {
    local name=$1
    env "${unset_fanout[@]}" FANOUT_JOBS_STORE="$store" FANOUT_EGRESS_ALLOW=127.0.0.1 \
        "$bin" serve --config "$repo/config/fanoutd.json" \
        --host 127.0.0.1 --port "${port[$name]}" --admin-port 0 --log-format json \
        --set shutdown.grace_s=10 --set jobs.lease_s=3 --set jobs.pool_size=6 \
        >>"$work/replica-$name.log" 2>&1 &
    pid[$name]=$!
}

gone() { ! kill -0 "$1" 2>/dev/null; }

for name in a b c; do start_replica "$name"; done
for name in a b c; do wait_until 30 "replica $name ready" ready "${port[$name]}"; done

write_haproxy_cfg "$work/haproxy.cfg" "$port_fe" a="$port_a" b="$port_b" c="$port_c"
haproxy -db -f "$work/haproxy.cfg" >>"$work/haproxy.log" 2>&1 &
other_pids+=($!)
for name in a b c; do wait_until 20 "HAProxy to see $name up" haproxy_up "$name"; done
echo "replicas: a=:$port_a b=:$port_b c=:$port_c behind HAProxy :$port_fe, store schema $schema" >&2

python3 scripts/replicas_load.py run --replica "a=http://127.0.0.1:$port_a" --replica "b=http://127.0.0.1:$port_b" \
    --replica "c=http://127.0.0.1:$port_c" --proxy "http://127.0.0.1:$port_fe" --upstream "http://127.0.0.1:$port_up" \
    --out "$work/summary.json" --started-file "$work/started" --timeout 150 2>>"$work/load.log" &
load_pid=$!
other_pids+=($load_pid)
wait_until 60 "the jobs to be submitted" test -f "$work/started"
sleep 1

for name in b c; do
    old=${pid[$name]}
    echo "replicas: SIGTERM replica $name" >&2
    kill -TERM "$old"
    wait_until 40 "replica $name to exit" gone "$old"
    code=0
    wait "$old" || code=$?
    [ "$code" -eq 0 ] || { echo "replicas: replica $name exited $code after SIGTERM" >&2; exit 1; }
    start_replica "$name"
    wait_until 30 "replica $name ready" ready "${port[$name]}"
    wait_until 30 "HAProxy to see $name up" haproxy_up "$name"
done
echo "replicas: SIGKILL replica a (its jobs must end interrupted)" >&2
kill -KILL "${pid[a]}"
wait "${pid[a]}" 2>/dev/null || true
sleep 1
start_replica a
wait_until 30 "replica a ready" ready "$port_a"

code=0
wait "$load_pid" || code=$?
other_pids=("${other_pids[@]/$load_pid}")
tail -n 20 "$work/load.log" >&2
[ "$code" -eq 0 ] || exit 1
for name in a b c; do
    kill -TERM "${pid[$name]}"
    wait "${pid[$name]}" || { echo "replicas: replica $name exited non-zero at the end" >&2; exit 1; }
done
pid=()
echo "replicas: passed" >&2
