#!/usr/bin/env bash
# RSS growth per open stream against libmicrohttpd's per-connection pool
# (`server.connection_memory_bytes`): N one-task 10 s streams held open at once (fanclient), a fresh
# fanoutd per pool size, RSS growth = VmHWM after - VmRSS before (BENCHMARKS.md, issue 12).
# usage: bench/pool-rss.sh FANOUTD_BINARY [N (4000)] [POOL_BYTES... (8192 12288 16384 32768 40960)]
# Needs gcc, python3, curl; ../shared/bench/fanclient.c. Loopback only.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$1; n=${2:-4000}; shift $(( $# > 1 ? 2 : 1 ))
pools=("$@"); [ ${#pools[@]} -gt 0 ] || pools=(8192 12288 16384 32768 40960)
work=$(mktemp -d /tmp/fanoutd-pool-rss.XXXXXX)
trap 'rm -rf "$work"' EXIT
gcc -O2 -o "$work/fanclient" "$root/../shared/bench/fanclient.c"
python3 "$root/bench/jobfiles.py" "$work" 9
port=19100
for pool in "${pools[@]}"; do
    port=$((port + 1))
    FANOUT_SERVER_CONNECTION_MEMORY_BYTES=$pool "$bin" --port "$port" --admin-port 0 >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
    sleep 0.5
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    out=$("$work/fanclient" 127.0.0.1 "$port" "$work/stream10s.json" "$n" 60)
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    completed=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["completed"])' "$out")
    echo "pool $pool bytes: $completed / $n open, RSS growth $(( (hwm - rss) / 1024 )) MiB = $(python3 -c "print('%.2f' % (($hwm - $rss) / $n))") KiB per open stream"
done
