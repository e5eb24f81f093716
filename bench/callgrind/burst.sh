#!/usr/bin/env bash
# Instructions of one job of 100,000 x 100 ms echo subtasks (issue 12's burst) under callgrind:
# decoding 4.5 MB, 100,000 timers on the shared DeadlineTimer, 100,001 lines.
# usage: bench/callgrind/burst.sh FANOUTD_BINARY [SHARED_BENCH_DIR (../shared/bench)]
# Builds fanclient, writes the job (bench/jobfiles.py), runs one warm-up job, zeroes the counters,
# then counts one more. Same method as job10.sh; CALLGRIND_OUT=FILE keeps the profile.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=$1; kit=$(cd "${2:-$here/../../../shared/bench}" && pwd)
work=$(mktemp -d /tmp/fanoutd-callgrind.XXXXXX)
gcc -O2 -shared -fPIC -o "$work/sigshim.so" "$here/sigshim.c"
gcc -O2 -o "$work/fanclient" "$kit/fanclient.c"
python3 "$here/../jobfiles.py" "$work" 9
objcopy --strip-debug "$bin" "$work/fanoutd"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
LD_PRELOAD=$work/sigshim.so valgrind --tool=callgrind --callgrind-out-file="$work/out" --separate-threads=no \
    "$work/fanoutd" --port "$port" --admin-port 0 --log-format json >"$work/log" 2>&1 &
vg=$!
trap 'kill $vg 2>/dev/null; wait $vg 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 600); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.2; done
"$work/fanclient" 127.0.0.1 "$port" "$work/burst.json" 1 600 >/dev/null
callgrind_control -z "$vg" >/dev/null 2>&1
result=$("$work/fanclient" 127.0.0.1 "$port" "$work/burst.json" 1 600)
callgrind_control -d "$vg" >/dev/null 2>&1
sleep 1
out=$(ls "$work"/out* | tail -1)
[ -n "${CALLGRIND_OUT:-}" ] && cp "$out" "$CALLGRIND_OUT"
total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
lines=$(python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(d["lines"], "lines,", d["completed"], "of 1 complete")' "$result")
echo "$(basename "$bin"): one 100,000 x 100 ms echo job: $total instructions ($lines)"
