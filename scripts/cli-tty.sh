#!/usr/bin/env bash
# The `fanout` progress display on a real pseudo-terminal (issue 10, item 6).
#
#   scripts/cli-tty.sh [BIN_DIR]      (default .build/debug, built first if missing)
#
# On loopback only: starts fanoutd on a free port, runs `fanout run` inside a detached tmux
# session (a real pty, 160x40), and with `tmux capture-pane`:
#   - mid-job, the screen shows the live bar (`[██…░░] done/total`, counts, lines/s, ETA);
#   - at the end, the bar is gone and the summary is there (counts, slowest, error codes), and
#     the exit status is 1 (the job has error lines);
#   - with NO_COLOR set, no bar is drawn at all (the plain-text summary still is);
#   - against a port where no server listens yet, the line says "reconnecting"; once a fanoutd
#     starts there, the retried submission runs the job to its end.
# Prints the captured frames; exits non-zero when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-.build/debug}
if [ ! -x "$bin/fanout" ] || [ ! -x "$bin/fanoutd" ]; then
    swift build --product fanoutd >&2
    swift build --product fanout >&2
fi
command -v tmux >/dev/null || { echo "cli-tty: tmux is not installed (apt-get install -y tmux)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/fanout-tty.XXXXXX")
session="fanout-tty-$$"
server_pid=""
late_pid=""
cleanup() {
    tmux kill-session -t "$session-late" 2>/dev/null || true
    [ -n "$late_pid" ] && kill "$late_pid" 2>/dev/null || true
    tmux kill-session -t "$session" 2>/dev/null || true
    tmux kill-session -t "$session-nc" 2>/dev/null || true
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "cli-tty: FAIL: $*" >&2; exit 1; }

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin/fanoutd" serve --host 127.0.0.1 --port "$port" --admin-port 0 --log-level warning >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/livez" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/livez" >/dev/null || fail "fanoutd did not start: $(cat "$work/server.log")"

# 60 echo subtasks over about 6 s, every tenth one failing.
python3 - "$work/job.json" <<'PY'
import json, sys
tasks = []
for i in range(60):
    task = {"id": f"task-{i:02d}", "kind": "echo", "delay_ms": 100 * (i + 1)}
    if i % 10 == 9:
        task["error"] = "boom"
    else:
        task["value"] = i
    tasks.append(task)
json.dump({"tasks": tasks}, open(sys.argv[1], "w"))
PY

screen() { tmux capture-pane -p -t "$1"; }
wait_for() { # session pattern seconds
    for _ in $(seq 1 $(($3 * 10))); do
        screen "$1" | grep -qE "$2" && return 0
        sleep 0.1
    done
    return 1
}

tmux new-session -d -s "$session" -x 160 -y 40 \
    "$bin/fanout run $work/job.json --server http://127.0.0.1:$port --output none; echo EXIT=\$?; sleep 600"
wait_for "$session" '\] [0-9]+/60 ' 30 || fail "no progress bar: $(screen "$session")"
sleep 2
screen "$session" >"$work/frame.txt"
grep -qE '^\[█+░+\] [0-9]+/60  ok [0-9]+  error [0-9]+  timeout 0  cancelled 0  [0-9]+\.[0-9]/s  0:0[0-9]  ETA 0:0[0-9]' "$work/frame.txt" \
    || fail "the mid-job frame has no bar with counts, rate and ETA: $(cat "$work/frame.txt")"
wait_for "$session" '^EXIT=' 60 || fail "fanout did not finish: $(screen "$session")"
screen "$session" >"$work/final.txt"
grep -q '^EXIT=1$' "$work/final.txt" || fail "exit status is not 1: $(cat "$work/final.txt")"
for expected in '^job [0-9a-f]{32}: 60 subtasks in ' '^  ok +54$' '^  error +6$' '^  total +60$' \
    '^  slowest +elapsed +status$' '^  task-59 +6\.[0-9]{2} s +error$' '^  error code +count$' '^  task_error +6$'; do
    grep -qE "$expected" "$work/final.txt" || fail "the summary lacks /$expected/: $(cat "$work/final.txt")"
done
grep -q '░' "$work/final.txt" && fail "the bar was not cleared at the end: $(cat "$work/final.txt")"

tmux new-session -d -s "$session-nc" -x 160 -y 40 \
    "NO_COLOR=1 $bin/fanout run $work/job.json --server http://127.0.0.1:$port --output none; echo EXIT=\$?; sleep 600"
wait_for "$session-nc" '^EXIT=' 60 || fail "fanout (NO_COLOR) did not finish"
screen "$session-nc" | grep -qE '░|█' && fail "NO_COLOR still drew a bar: $(screen "$session-nc")"
screen "$session-nc" | grep -qE '^  task_error +6$' || fail "NO_COLOR lost the summary: $(screen "$session-nc")"

late_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
tmux new-session -d -s "$session-late" -x 160 -y 40 \
    "$bin/fanout run $work/job.json --server http://127.0.0.1:$late_port --output none --resume-timeout 60; echo EXIT=\$?; sleep 600"
wait_for "$session-late" 'reconnecting: .*connection refused' 30 || fail "no reconnecting note: $(screen "$session-late")"
screen "$session-late" >"$work/reconnecting.txt"
"$bin/fanoutd" serve --host 127.0.0.1 --port "$late_port" --admin-port 0 --log-level warning >"$work/late.log" 2>&1 &
late_pid=$!
wait_for "$session-late" '^EXIT=' 60 || fail "the retried submission did not finish: $(screen "$session-late")"
screen "$session-late" | grep -qE '^  task_error +6$' || fail "no summary after the retried submission: $(screen "$session-late")"

echo "--- mid-job frame"
sed '/^$/d' "$work/frame.txt"
echo "--- final screen"
sed '/^$/d' "$work/final.txt"
echo "--- before the server is up"
sed '/^$/d' "$work/reconnecting.txt"
echo "cli-tty: OK"
