#!/usr/bin/env bash
# Instructions of one job of 100,000 x 100 ms echo subtasks (issue 12's burst) under callgrind:
# decoding 4.5 MB, 100,000 timers on the shared DeadlineTimer, 100,001 lines.
# usage: bench/callgrind/burst.sh FANOUTD_BINARY [SHARED_BENCH_DIR (../shared/bench)]
# Builds fanclient, writes the job (bench/jobfiles.py), runs one warm-up job, zeroes the counters,
# then counts one more. Same method as job10.sh (lib.sh); CALLGRIND_OUT=FILE keeps the profile.
set -eu
source "$(dirname "$0")/lib.sh"
bin=$1; kit=$(cd "${2:-$here/../../../shared/bench}" && pwd)
callgrind_start "$bin" /healthz --port "{port}" --admin-port 0 --log-format json
gcc -O2 -o "$work/fanclient" "$kit/fanclient.c"
python3 "$here/../jobfiles.py" "$work" 9
"$work/fanclient" 127.0.0.1 "$port" "$work/burst.json" 1 600 >/dev/null
callgrind_zero
result=$("$work/fanclient" 127.0.0.1 "$port" "$work/burst.json" 1 600)
total=$(callgrind_total)
lines=$(python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(d["lines"], "lines,", d["completed"], "of 1 complete")' "$result")
echo "$(basename "$bin"): one 100,000 x 100 ms echo job: $total instructions ($lines)"
