#!/usr/bin/env bash
# Every figure in BENCHMARKS.md, in one run, on 127.0.0.1 only.
# usage: bench/run-all.sh [SHARED_BENCH_DIR] [FANOUTD_BINARY]   (default ../shared/bench beside the
# project root; without a binary it builds the release one)
# Needs: wrk, node, python3 with aiohttp + uvloop (pip install aiohttp uvloop), libmicrohttpd-dev.
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
kit=$(cd "${1:-$root/../shared/bench}" && pwd)
work=$(mktemp -d /tmp/fanoutd-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT

if [ -n "${2:-}" ]; then
    bin=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
else
    swift build -c release --product fanoutd >/dev/null || exit 1
    bin=$root/.build/release/fanoutd
fi
gcc -O2 -o "$work/mhd_limit" "$kit/peers/mhd_limit.c" $(pkg-config --cflags --libs libmicrohttpd) || exit 1
gcc -O2 -o "$work/fanclient" "$kit/fanclient.c" || exit 1
python3 "$root/bench/jobfiles.py" "$work" 18201 || exit 1  # the job files fanclient posts
kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }  # kib PID VmRSS|VmHWM

start_fanoutd() {  # start_fanoutd PORT [--set k=v ...]; sets $fanoutd_pid
    local port=$1; shift
    FANOUT_EGRESS_ALLOW=127.0.0.1 "$bin" --port "$port" --admin-port 0 --log-format json "$@" >>"$work/fanoutd.log" 2>&1 &
    fanoutd_pid=$!
    pids+=("$fanoutd_pid")
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return; sleep 0.1; done
}
stop() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

"$work/mhd_limit" 18201 >/dev/null 2>&1 & pids+=($!)
node "$kit/peers/node_peer.js" 18202 >/dev/null 2>&1 & pids+=($!)
python3 "$kit/peers/aiohttp_peer.py" 18203 >/dev/null 2>&1 & pids+=($!)
node "$root/bench/upstream.js" 19000 >/dev/null 2>&1 & pids+=($!)
start_fanoutd 18200
sleep 1

echo "== job10 and /healthz: wrk -t1 -c64, 3 interleaved rounds of 5 s, medians"
bash "$kit/compare.sh" 3 5 fanoutd=http://127.0.0.1:18200 mhd_limit=http://127.0.0.1:18201 \
    node=http://127.0.0.1:18202 aiohttp=http://127.0.0.1:18203

echo "== job10 with delay_ms 1 (a streamed job; echo subtasks are timers): wrk -t1 -c64 -d5s"
sed 's/"delay_ms":0/"delay_ms":1/' "$kit/job10.lua" >"$work/job10-delay1.lua"
for u in fanoutd=18200 node=18202; do
    echo "${u%%=*} $(wrk -t1 -c64 -d5s -s "$work/job10-delay1.lua" "http://127.0.0.1:${u#*=}/v1/jobs" | awk '/Requests\/sec/{print $2}')"
done

echo "== fanbench latency (100 tasks, 5 ms steps, 5 rounds)"
for u in fanoutd=18200 node=18202 aiohttp=18203; do
    echo "${u%%=*} $(python3 "$kit/fanbench.py" latency --url "http://127.0.0.1:${u#*=}" 2>/dev/null)"
done

echo "== fanbench burst: 100,000 tasks x 100 ms (fresh server)"
stop "$fanoutd_pid"; start_fanoutd 18200
python3 "$kit/fanbench.py" burst --url http://127.0.0.1:18200 --tasks 100000 --delay 100 --pid "$fanoutd_pid" 2>/dev/null
echo "== fanbench burst: 100,000 tasks x 0 ms (the client's own floor)"
python3 "$kit/fanbench.py" burst --url http://127.0.0.1:18200 --tasks 100000 --delay 0 2>/dev/null

echo "== fanbench streams: 10,000 x 1 s (fresh server)"
stop "$fanoutd_pid"; start_fanoutd 18200
python3 "$kit/fanbench.py" streams --url http://127.0.0.1:18200 --conns 10000 --delay 1000 --pid "$fanoutd_pid" 2>/dev/null

echo "== fanbench slowread: 20,000 x 512 B, stall 3 s and 0 s (fresh servers)"
for stall in 3 0; do
    stop "$fanoutd_pid"; start_fanoutd 18200
    python3 "$kit/fanbench.py" slowread --url http://127.0.0.1:18200 --stall "$stall" --pid "$fanoutd_pid" 2>/dev/null
done
echo "== fanbench slowread: 100,000 x 512 B (a 56 MB job: server.max_body_bytes raised), stall 3 s and 0 s"
for stall in 3 0; do
    stop "$fanoutd_pid"; start_fanoutd 18200 --set server.max_body_bytes=134217728
    python3 "$kit/fanbench.py" slowread --url http://127.0.0.1:18200 --tasks 100000 --stall "$stall" --pid "$fanoutd_pid" 2>/dev/null
done

echo "== fanbench disconnect"
python3 "$kit/fanbench.py" disconnect --url http://127.0.0.1:18200 --pid "$fanoutd_pid" 2>/dev/null
curl -s http://127.0.0.1:18200/metrics | grep -E '^fanout_(subtasks|jobs)_in_flight|^fanout_client_disconnects_total'

echo "== fanclient burst: one job of 100,000 echo x 100 ms, CONNS=1 (fresh server; RSS growth = VmHWM after - VmRSS before)"
stop "$fanoutd_pid"; start_fanoutd 18200
before=$(kib "$fanoutd_pid" VmRSS)
"$work/fanclient" 127.0.0.1 18200 "$work/burst.json" 1 60
echo "rss_growth_kib=$(( $(kib "$fanoutd_pid" VmHWM) - before ))"

echo "== fanclient streams: 10,000 one-task 1 s jobs at once (fresh server; RSS growth as above)"
stop "$fanoutd_pid"; start_fanoutd 18200
before=$(kib "$fanoutd_pid" VmRSS)
"$work/fanclient" 127.0.0.1 18200 "$work/stream1s.json" 10000 60
echo "rss_growth_kib=$(( $(kib "$fanoutd_pid" VmHWM) - before ))"
node "$kit/peers/node_peer.js" 18212 >/dev/null 2>&1 & node_pid=$!; pids+=("$node_pid")  # a fresh Node peer
sleep 1; before=$(kib "$node_pid" VmRSS)
echo "node: $("$work/fanclient" 127.0.0.1 18212 "$work/stream1s.json" 10000 60) rss_growth_kib=$(( $(kib "$node_pid" VmHWM) - before ))"
stop "$node_pid"

echo "== fanclient http: one job of 1,000 http GETs to mhd_limit /healthz, 3 interleaved rounds (wall_ms_max)"
for r in 1 2 3; do
    for u in fanoutd=18200 node=18202; do
        echo "${u%%=*} $("$work/fanclient" 127.0.0.1 "${u#*=}" "$work/http1000.json" 1 60)"
    done
done

echo "== http10: jobs of 10 http GETs to mhd_limit /healthz under wrk -t1 -c64, 3 interleaved rounds of 5 s"
for r in 1 2 3; do
    for u in fanoutd=18200 node=18202; do
        echo "${u%%=*} $(UPSTREAM=http://127.0.0.1:18201/healthz wrk -t1 -c64 -d5s -s "$root/bench/http10.lua" "http://127.0.0.1:${u#*=}/v1/jobs" | awk '/Requests\/sec/{print $2}')"
    done
done

echo "== retained: one detached job of 50,000 instant echo tasks into the memory store (fresh server)"
stop "$fanoutd_pid"; start_fanoutd 18200
python3 "$root/bench/retained.py" http://127.0.0.1:18200 "$fanoutd_pid" 50000

echo "== http kind: one job of 1,000 GET /fast, 3 interleaved rounds of 10 jobs"
for r in 1 2 3; do
    for u in fanoutd=18200 node=18202 aiohttp=18203; do
        echo "${u%%=*} $(python3 "$root/bench/httpbench.py" fanout --url "http://127.0.0.1:${u#*=}" --upstream http://127.0.0.1:19000 --rounds 10)"
    done
done

echo "== hedging: jobs of 200 GET /tail (p99 = 20 x median), 10 rounds, hedge_after_ms 15"
python3 "$root/bench/httpbench.py" hedge --url http://127.0.0.1:18200 --upstream http://127.0.0.1:19000 --rounds 10
