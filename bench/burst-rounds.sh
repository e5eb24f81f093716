#!/usr/bin/env bash
# Issue 12's burst (one job of 100,000 x 100 ms echo, fanclient CONNS=1) in interleaved rounds, a
# fresh server each, beside the C floor (bench/lag-floor): first line, end, RSS growth (VmHWM minus
# the RSS before the job). On 127.0.0.1 only.
# usage: [KIT=../shared/bench] bench/burst-rounds.sh ROUNDS FANOUTD_BINARY...
# Needs gcc and python3.
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
rounds=$1; shift
kit=${KIT:-$root/../shared/bench}
work=$(mktemp -d /tmp/fanoutd-burst.XXXXXX)
trap 'rm -rf "$work"' EXIT
gcc -O2 -o "$work/fanclient" "$kit/fanclient.c" || exit 1
gcc -O2 -o "$work/lag_floor" "$root/bench/lag-floor/lag_floor.c" || exit 1
python3 "$root/bench/jobfiles.py" "$work" 18301 >/dev/null || exit 1
kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
field() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d.get(sys.argv[2]))" "$1" "$2"; }
port=18700
for r in $(seq "$rounds"); do
    for bin in floor "$@"; do
        port=$((port + 1))
        if [ "$bin" = floor ]; then "$work/lag_floor" "$port" >/dev/null 2>&1 &
        else "$bin" --port "$port" --admin-port 0 --log-format json >/dev/null 2>&1 &
        fi
        pid=$!
        for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done  # listening
        sleep 0.5  # past the server's start-up allocations
        rss=$(kib "$pid" VmRSS)
        out=$("$work/fanclient" 127.0.0.1 "$port" "$work/burst.json" 1 60)
        echo "$(basename "$bin") round $r: first line $(field "$out" first_line_ms_max) ms, end $(field "$out" wall_ms_max) ms, lines $(field "$out" lines), RSS growth $(( ($(kib "$pid" VmHWM) - rss) / 1024 )) MiB"
        kill "$pid"; wait "$pid" 2>/dev/null
    done
done
