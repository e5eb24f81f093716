#!/usr/bin/env bash
# Instructions per GET /healthz of a server under callgrind (the request path with no job: MHD's
# callbacks, the head, the answer). Repeatable where wall-clock rounds are not.
# usage: bench/callgrind/healthz.sh BINARY [N (2000)] [fanoutd|mhd_limit (fanoutd)]
# mhd_limit is ../shared/bench/peers/mhd_limit.c built with gcc (it takes its port as argument).
# Same method as job10.sh: stripped copy, sigsuspend shim, 200 warm-up requests, counters zeroed,
# then N GETs on one kept-alive connection. CALLGRIND_OUT=FILE keeps the profile.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=$1; n=${2:-2000}; kind=${3:-fanoutd}
work=$(mktemp -d /tmp/fanoutd-callgrind.XXXXXX)
gcc -O2 -shared -fPIC -o "$work/sigshim.so" "$here/sigshim.c"
objcopy --strip-debug "$bin" "$work/server"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
args=(--port "$port" --admin-port 0 --log-format json)
[ "$kind" = mhd_limit ] && args=("$port")
LD_PRELOAD=$work/sigshim.so valgrind --tool=callgrind --callgrind-out-file="$work/out" --separate-threads=no \
    "$work/server" "${args[@]}" >"$work/log" 2>&1 &
vg=$!
trap 'kill $vg 2>/dev/null; wait $vg 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 600); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.2; done
drive() {
    python3 - "$port" "$1" <<'PY'
import http.client, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection('127.0.0.1', port, timeout=120)
for _ in range(n):
    c.request('GET', '/healthz'); r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
}
drive 200
callgrind_control -z "$vg" >/dev/null 2>&1
drive "$n"
callgrind_control -d "$vg" >/dev/null 2>&1
sleep 1
out=$(ls "$work"/out* | tail -1)
[ -n "${CALLGRIND_OUT:-}" ] && cp "$out" "$CALLGRIND_OUT"
total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo "$(basename "$bin"): $n GET /healthz: $total instructions, $((total / n)) per request"
