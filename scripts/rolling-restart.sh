#!/usr/bin/env bash
# A rolling restart under load that must lose nothing (issue 4, item 9).
#
#   scripts/rolling-restart.sh [path/to/fanoutd]
#
# On loopback only:
#   - two fanoutd replicas (a, b) on free ports;
#   - HAProxy in front of them, health-checking GET /readyz;
#   - scripts/rolling_load.py keeping 12 clients busy for at least 20 s with jobs of 1-2 s
#     echo subtasks.
# While the load runs: SIGTERM a, wait for it to drain and exit, start it again, wait until
# HAProxy sees it ready; then the same for b. At the end:
#   - every job that got a 200 must have all its result lines and its end line (checked line by
#     line against the job sent);
#   - each replica must have had jobs in flight at its SIGTERM, and all of them must complete;
#   - the other replica must have served new jobs meanwhile;
#   - both replicas must exit 0;
#   - the replicas' logs must account for every accepted job.
# 503s (draining or saturated: the job never started) are counted on their own; the client
# retries them. Prints the counts; exits non-zero on any cut stream or other failure.
#
# Without an argument the binary is .build-ops/release/fanoutd, built first if missing (the
# release build of scripts/check-release-binary.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

bin=$(scripts/release-binary.sh rolling-restart "$@")
command -v haproxy >/dev/null || { echo "rolling-restart: haproxy is not installed (apt-get install haproxy)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "rolling-restart: python3 is needed" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/fanoutd-rolling.XXXXXX")
script=rolling-restart
# shellcheck source=scripts/replica-lib.sh
. scripts/replica-lib.sh
declare -A pid=()
haproxy_pid=""
load_pid=""
cleanup() {
    local status=$?
    for p in "${pid[@]}" $haproxy_pid $load_pid; do
        kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    report_and_exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
event() { echo "$(now) $*" >>"$work/events.txt"; }

# Three free loopback ports: replica a, replica b, HAProxy's frontend.
read -r port_a port_b port_fe < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
EOF
)
declare -A port=([a]=$port_a [b]=$port_b)

# The replicas get no FANOUT_* variable from the caller's environment (auth would change the
# answers); their configuration is the repository's file plus these flags.

start_replica() {
    local name=$1
    env "${unset_fanout[@]}" "$bin" serve --config "$repo/config/fanoutd.json" \
        --host 127.0.0.1 --port "${port[$name]}" --admin-port 0 --log-format json \
        --set shutdown.grace_s=10 \
        >>"$work/replica-$name.log" 2>&1 &
    pid[$name]=$!
    event started "$name" "${pid[$name]}"
}

start_replica a
start_replica b
wait_until 30 "replica a ready" ready "$port_a"
wait_until 30 "replica b ready" ready "$port_b"

write_haproxy_cfg "$work/haproxy.cfg" "$port_fe" a="$port_a" b="$port_b"
haproxy -db -f "$work/haproxy.cfg" >>"$work/haproxy.log" 2>&1 &
haproxy_pid=$!
wait_until 20 "HAProxy to see a up" haproxy_up a
wait_until 20 "HAProxy to see b up" haproxy_up b
echo "rolling-restart: replicas a=:$port_a b=:$port_b behind HAProxy :$port_fe; load starting" >&2

python3 scripts/rolling_load.py run --url "http://127.0.0.1:$port_fe" --records "$work/records.json" \
    --done-file "$work/restarts-done" --workers 12 --min-seconds 20 --max-seconds 60 \
    2>>"$work/load.log" &
load_pid=$!

sleep 4
for name in a b; do
    old=${pid[$name]}
    echo "rolling-restart: SIGTERM replica $name (pid $old)" >&2
    event sigterm "$name" "$old"  # stamped before the signal, so no job that ends on it is missed
    kill -TERM "$old"
    wait_until 30 "replica $name to leave HAProxy's rotation" haproxy_down "$name"
    # The drain: running jobs finish (1-2 s here, shutdown.grace_s=10), then the process exits.
    deadline=$(( $(date +%s) + 40 ))
    while kill -0 "$old" 2>/dev/null; do
        if [ "$(date +%s)" -ge "$deadline" ]; then echo "rolling-restart: replica $name did not exit within 40 s" >&2; exit 1; fi
        sleep 0.05
    done
    code=0
    wait "$old" || code=$?
    event exited "$name" "$code"
    echo "rolling-restart: replica $name exited with $code; starting it again" >&2
    start_replica "$name"
    wait_until 30 "replica $name ready" ready "${port[$name]}"
    wait_until 30 "HAProxy to see $name up" haproxy_up "$name"
    event ready "$name"
    sleep 2  # let it take load before the next one goes
done
touch "$work/restarts-done"

wait "$load_pid" || { echo "rolling-restart: the load client failed" >&2; load_pid=""; exit 1; }
load_pid=""
python3 scripts/rolling_load.py haproxy-stats --socket "$work/haproxy.sock" --backend fanoutd >"$work/haproxy-stats.json"
tail -n 1 "$work/load.log" >&2 || true

# Stop the restarted replicas too (their drain is instant now), so their logs are complete.
for name in a b; do
    kill -TERM "${pid[$name]}"
    wait "${pid[$name]}" || { echo "rolling-restart: replica $name exited non-zero at the end" >&2; exit 1; }
done
pid=()

python3 scripts/rolling_load.py report --records "$work/records.json" --events "$work/events.txt" --logs "$work" \
    --haproxy-stats "$work/haproxy-stats.json"
