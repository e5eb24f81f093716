#!/usr/bin/env bash
# Instructions per job10 request of a fanoutd build, under callgrind: repeatable on a loaded machine,
# where wall-clock rounds of one binary vary by ±40 % (BENCHMARKS.md "Work per request").
# usage: bench/callgrind/job10.sh FANOUTD_BINARY [N (500)] [DELAY_MS (0: answered at once; 1: streamed)] [UPSTREAM_URL]
# With UPSTREAM_URL (a loopback URL, e.g. mhd_limit's http://127.0.0.1:PORT/healthz) the ten
# subtasks are `http` GETs of it instead of echoes (the http10 load); DELAY_MS is then unused.
# Needs valgrind and gcc (lib.sh). 100 warm-up requests, counters zeroed, then N job10 POSTs on one
# kept-alive connection. CALLGRIND_OUT=FILE keeps the profile.
set -eu
source "$(dirname "$0")/lib.sh"
bin=$1; n=${2:-500}; delay=${3:-0}; upstream=${4:-}
export FANOUT_EGRESS_ALLOW=127.0.0.1
callgrind_start "$bin" /readyz --port "{port}" --admin-port 0 --log-format json
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
callgrind_zero
drive "$n"
total=$(callgrind_total)
what="delay_ms $delay"; [ -n "$upstream" ] && what="http GETs of $upstream"
echo "$(basename "$bin"): $n job10 requests ($what): $total instructions, $((total / n)) per request"
