#!/usr/bin/env bash
# Every task-allocator allocation of one open stream's task (an async frame, a continuation, a
# cancellation record), with the function that made it. A job of timers only has no task (issue 12,
# sixth pass), so the job is a 3 s echo beside one `http` GET of the server's own /healthz (its
# subtasks' group keeps the stream's task): one such job against a
# fanoutd release binary run under gdb. Sums them; with the allocator's 16-byte headers, more than
# ~984 bytes take a second ~1 KiB slab, held for the stream's life (BENCHMARKS.md, issue 12).
# usage: bench/frames/task-allocs.sh FANOUTD_BINARY [PORT (18181)]       needs: gdb, curl, python3
set -eu
bin=$1; port=${2:-18181}
work=$(mktemp -d /tmp/fanoutd-task-allocs.XXXXXX)
alloc=$(nm "$bin" | awk '/ t _ZN5swift14StackAllocator.*TaskAllocatorSlabMetadata.*5allocEm$/ {print $3; exit}')
[ -n "$alloc" ] || { echo "task-allocs: no StackAllocator::alloc symbol in $bin" >&2; exit 2; }
cat >"$work/gdb" <<GDB
set pagination off
handle SIGTERM nostop pass
handle SIGINT nostop pass
handle SIGUSR1 nostop noprint pass
handle SIGUSR2 nostop noprint pass
break $alloc
commands
silent
printf "ALLOC %d this=%p\n", \$rsi, \$rdi
bt 3
continue
end
run
GDB
FANOUT_EGRESS_ALLOW=127.0.0.1 gdb -batch -x "$work/gdb" --args "$bin" --port "$port" --admin-port 0 >"$work/out" 2>&1 &
trap 'pkill -TERM -f -- "$bin --port $port" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 120); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 1; done
sleep 2
from=$(wc -l <"$work/out")
curl -sN -X POST -H 'Content-Type: application/json' --max-time 60 -o /dev/null \
    --data '{"tasks":[{"kind":"echo","delay_ms":3000,"value":"x"},{"kind":"http","url":"http://127.0.0.1:'"$port"'/healthz"}]}' \
    "http://127.0.0.1:$port/v1/jobs"
tail -n +"$from" "$work/out" | swift-demangle --simplified --compact | python3 -c '
import re, sys
blocks = [b for b in sys.stdin.read().split("ALLOC ")[1:]]
task = next((re.search(r"this=(0x[0-9a-f]+)", b).group(1) for b in blocks if "PlainJobStream" in b), None)
if task is None: sys.exit("task-allocs: no allocation of the stream task seen")
total = count = 0
for b in blocks:
    lines = b.split("\n")
    if task not in lines[0]: continue
    size = int(lines[0].split()[0]); total += size; count += 1
    caller = re.sub(r"^#\d+\s+(0x[0-9a-f]+ in )?", "", lines[2].strip()) if len(lines) > 2 else ""
    caller = re.sub(r" \(.*", "", caller)[:110]
    print(f"{size:5d}  {caller}")
print(f"total {total} bytes in {count} allocations ({total + 16 * count} with headers)")
'
