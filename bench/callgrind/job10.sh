#!/usr/bin/env bash
# Instructions per job10 request of a fanoutd build, under callgrind: repeatable on a loaded machine,
# where wall-clock rounds of one binary vary by ±40 % (BENCHMARKS.md "Work per request").
# usage: bench/callgrind/job10.sh FANOUTD_BINARY [N (500)] [DELAY_MS (0: answered at once; 1: streamed)] [UPSTREAM_URL]
# With UPSTREAM_URL (a loopback URL, e.g. mhd_limit's http://127.0.0.1:PORT/healthz) the ten
# subtasks are `http` GETs of it instead of echoes (the http10 load); DELAY_MS is then unused.
# Needs valgrind and gcc. The binary is copied with `objcopy --strip-debug` (valgrind 3.19 cannot
# read Swift's DWARF 5) and run with an LD_PRELOAD shim for sigsuspend (sigshim.c). 100 warm-up
# requests, counters zeroed, then N job10 POSTs on one kept-alive connection. CALLGRIND_OUT=FILE
# keeps the profile.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=$1; n=${2:-500}; delay=${3:-0}; upstream=${4:-}
work=$(mktemp -d /tmp/fanoutd-callgrind.XXXXXX)
gcc -O2 -shared -fPIC -o "$work/sigshim.so" "$here/sigshim.c"
objcopy --strip-debug "$bin" "$work/fanoutd"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
FANOUT_EGRESS_ALLOW=127.0.0.1 LD_PRELOAD=$work/sigshim.so valgrind --tool=callgrind --callgrind-out-file="$work/out" --separate-threads=no \
    "$work/fanoutd" --port "$port" --admin-port 0 --log-format json >"$work/log" 2>&1 &
vg=$!
trap 'kill $vg 2>/dev/null; wait $vg 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 600); do curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" && break; sleep 0.2; done
drive() {
    python3 - "$port" "$1" "$delay" "$upstream" <<'PY'
import http.client, sys
port, n, delay, upstream = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
if upstream:
    body = '{"tasks":[' + ','.join('{"kind":"http","url":"%s?n=%d"}' % (upstream, i) for i in range(10)) + ']}'
else:
    body = '{"tasks":[' + ','.join('{"kind":"echo","delay_ms":%s,"value":%d}' % (delay, i) for i in range(10)) + ']}'
c = http.client.HTTPConnection('127.0.0.1', port, timeout=120)
for _ in range(n):
    c.request('POST', '/v1/jobs', body, {'Content-Type': 'application/json'})
    r = c.getresponse(); data = r.read()
    assert r.status == 200, r.status
    assert data.count(b'"status":"ok"') == 10, data[:300]
PY
}
drive 100
callgrind_control -z "$vg" >/dev/null 2>&1
drive "$n"
callgrind_control -d "$vg" >/dev/null 2>&1
sleep 1
out=$(ls "$work"/out* | tail -1)
[ -n "${CALLGRIND_OUT:-}" ] && cp "$out" "$CALLGRIND_OUT"  # kept for callgrind_annotate --inclusive=yes
total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
what="delay_ms $delay"; [ -n "$upstream" ] && what="http GETs of $upstream"
echo "$(basename "$bin"): $n job10 requests ($what): $total instructions, $((total / n)) per request"
