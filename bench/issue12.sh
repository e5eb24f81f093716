#!/usr/bin/env bash
# The rows of issue 12's table for two fanoutd builds side by side, beside the Node peer and the
# raw-libmicrohttpd ceiling, in one run, on 127.0.0.1 only (BENCHMARKS.md "Issue 12, before and after").
# usage: bench/issue12.sh BEFORE_BINARY AFTER_BINARY [SHARED_BENCH_DIR]
# Needs: wrk, node, gcc, libmicrohttpd-dev, python3. Each figure is printed as it is measured.
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
before=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
after=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
kit=$(cd "${3:-$root/../shared/bench}" && pwd)
work=$(mktemp -d /tmp/fanoutd-issue12.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT

gcc -O2 -o "$work/mhd_limit" "$kit/peers/mhd_limit.c" $(pkg-config --cflags --libs libmicrohttpd) || exit 1
gcc -O2 -o "$work/fanclient" "$kit/fanclient.c" || exit 1
gcc -O2 -o "$work/lag_floor" "$root/bench/lag-floor/lag_floor.c" || exit 1
gcc -O2 -o "$work/stream_floor" "$root/bench/stream-floor/stream_floor.c" $(pkg-config --cflags --libs libmicrohttpd) -lpthread || exit 1
python3 "$root/bench/jobfiles.py" "$work" 18301 || exit 1  # the job files fanclient posts
kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }  # kib PID VmRSS|VmHWM
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }                  # utime + stime, in ticks
started_pid=""
declare -A pid_of  # port -> pid of the server started on it
start() {  # start NAME PORT: a fresh server (fanoutd builds with their default config); sets started_pid
    case $1 in
        before | after)
            local bin=$before; [ "$1" = after ] && bin=$after
            FANOUT_EGRESS_ALLOW=127.0.0.1 "$bin" --port "$2" --admin-port 0 --log-format json >>"$work/$1.log" 2>&1 &
            ;;
        node) node "$kit/peers/node_peer.js" "$2" >/dev/null 2>&1 & ;;
        floor1s) "$work/stream_floor" "$2" 1000 >/dev/null 2>&1 & ;;   # raw libmicrohttpd, 1 s then two lines
        floor10s) "$work/stream_floor" "$2" 10000 >/dev/null 2>&1 & ;;
    esac
    started_pid=$!
    pid_of[$2]=$started_pid
    pids+=("$started_pid")
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$2/healthz" && break; sleep 0.1; done
}
stop() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
field() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d.get(sys.argv[2]))" "$1" "$2"; }

"$work/mhd_limit" 18301 >/dev/null 2>&1 & pids+=($!)
"$work/lag_floor" 18302 >/dev/null 2>&1 & pids+=($!)
start before 18310; start after 18311; start node 18312
sleep 1

echo "== job10 and /healthz: wrk -t1 -c64, 3 interleaved rounds of 5 s (compare.sh), medians"
bash "$kit/compare.sh" 3 5 before=http://127.0.0.1:18310 after=http://127.0.0.1:18311 \
    node=http://127.0.0.1:18312 mhd_limit=http://127.0.0.1:18301

echo "== line lag (fanbench latency: 100 tasks, 5 ms steps, 5 rounds), 3 interleaved rounds; floor: bench/lag-floor"
for r in 1 2 3; do
    for s in floor=18302 before=18310 after=18311 node=18312; do
        echo "${s%%=*} round $r $(python3 "$kit/fanbench.py" latency --url "http://127.0.0.1:${s#*=}" 2>/dev/null)"
    done
done

echo "== http10: jobs of 10 http GETs to mhd_limit /healthz, wrk -t1 -c64 -d5s, 3 interleaved rounds; server CPU per job"
for r in 1 2 3; do
    for s in before=18310 after=18311 node=18312; do
        pid=${pid_of[${s#*=}]}
        a=$(cpu "$pid")
        rps=$(UPSTREAM=http://127.0.0.1:18301/healthz wrk -t1 -c64 -d5s -s "$root/bench/http10.lua" "http://127.0.0.1:${s#*=}/v1/jobs" | awk '/Requests\/sec/{print $2}')
        b=$(cpu "$pid")
        echo "${s%%=*} round $r: $rps req/s, server CPU $(python3 -c "print('%.2f' % (($b - $a) * 10 / ($rps * 5)))") ms per job"
    done
done

echo "== one job of 1,000 http GETs to mhd_limit /healthz (fanclient), 3 interleaved rounds: wall_ms_max"
for r in 1 2 3; do
    for s in before=18310 after=18311 node=18312; do
        out=$("$work/fanclient" 127.0.0.1 "${s#*=}" "$work/http1000.json" 1 60)
        echo "${s%%=*} round $r: $(field "$out" wall_ms_max) ms"
    done
done
cleanup; pids=()

echo "== 10,000 one-task 1 s streams at once (fanclient CONNS=10000), fresh server each, 2 rounds: slowest end, RSS growth;"
echo "   floor: bench/stream-floor (raw libmicrohttpd as fanoutd runs it, answering two lines 1 s after each body)"
# 5 s between cases: 10,000 connections closed just before slow the next server's accepts (without
# the pause, `after`, second in each round, ended 0.8 s after `before` in both rounds; with it, and
# `after` run first, 0.1 s before it).
port=18320
for r in 1 2; do
    for name in floor1s before after node; do
        port=$((port + 1))
        sleep 5
        start "$name" "$port"; sleep 0.5
        rss=$(kib "$started_pid" VmRSS)
        out=$("$work/fanclient" 127.0.0.1 "$port" "$work/stream1s.json" 10000 60)
        echo "$name round $r: completed $(field "$out" completed) (failed $(field "$out" failed), connect errors $(field "$out" connect_errors)), slowest end $(field "$out" wall_ms_max) ms, RSS growth $(( ($(kib "$started_pid" VmHWM) - rss) / 1024 )) MiB"
        stop "$started_pid"
    done
done

echo "== 10,000 one-task 10 s streams: all open at once however slowly they connect; RSS growth per open stream (floor: bench/stream-floor)"
for name in floor10s before after node; do
    port=$((port + 1))
    sleep 5
    start "$name" "$port"; sleep 0.5
    rss=$(kib "$started_pid" VmRSS)
    out=$("$work/fanclient" 127.0.0.1 "$port" "$work/stream10s.json" 10000 60)
    growth=$(( $(kib "$started_pid" VmHWM) - rss ))
    echo "$name: completed $(field "$out" completed), failed $(field "$out" failed), connect errors $(field "$out" connect_errors), RSS growth $((growth / 1024)) MiB = $(python3 -c "print('%.1f' % ($growth / 10000))") KiB per open stream"
    stop "$started_pid"
done

echo "== one job of 100,000 x 100 ms echo (fanclient CONNS=1), fresh server each, 3 rounds: first line, end, RSS growth"
for r in 1 2 3; do
    for name in before after; do
        port=$((port + 1))
        start "$name" "$port"; sleep 0.5
        rss=$(kib "$started_pid" VmRSS)
        out=$("$work/fanclient" 127.0.0.1 "$port" "$work/burst.json" 1 60)
        echo "$name round $r: first line $(field "$out" first_line_ms_max) ms, end $(field "$out" wall_ms_max) ms, RSS growth $(( ($(kib "$started_pid" VmHWM) - rss) / 1024 )) MiB"
        stop "$started_pid"
    done
done
