#!/usr/bin/env bash
# Instructions per GET /healthz of a server under callgrind (the request path with no job: MHD's
# callbacks, the head, the answer). Repeatable where wall-clock rounds are not.
# usage: bench/callgrind/healthz.sh BINARY [N (2000)] [fanoutd|mhd_limit (fanoutd)]
# mhd_limit is ../shared/bench/peers/mhd_limit.c built with gcc (it takes its port as argument).
# Same method as job10.sh (lib.sh): 200 warm-up requests, counters zeroed, then N GETs on one
# kept-alive connection. CALLGRIND_OUT=FILE keeps the profile.
set -eu
source "$(dirname "$0")/lib.sh"
bin=$1; n=${2:-2000}; kind=${3:-fanoutd}
if [ "$kind" = mhd_limit ]; then
    callgrind_start "$bin" /healthz "{port}"
else
    callgrind_start "$bin" /healthz --port "{port}" --admin-port 0 --log-format json
fi
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
callgrind_zero
drive "$n"
total=$(callgrind_total)
echo "$(basename "$bin"): $n GET /healthz: $total instructions, $((total / n)) per request"
