# Shared by the callgrind scripts (source it): a server under callgrind, its counters zeroed after
# the warm-up, then dumped and totalled. valgrind 3.19 cannot read Swift's DWARF 5, so the binary is
# copied with `objcopy --strip-debug`, and run with an LD_PRELOAD shim for sigsuspend (sigshim.c).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# callgrind_start BINARY READY_PATH ARG...: starts BINARY's stripped copy with ARG ("{port}" in an
# ARG is the loopback port picked) and waits until READY_PATH answers. Sets work, port and vg;
# everything is removed at exit.
callgrind_start() {
    local bin=$1 ready=$2
    shift 2
    work=$(mktemp -d /tmp/fanoutd-callgrind.XXXXXX)
    gcc -O2 -shared -fPIC -o "$work/sigshim.so" "$here/sigshim.c"
    objcopy --strip-debug "$bin" "$work/server"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    local args=("${@//\{port\}/$port}")
    LD_PRELOAD=$work/sigshim.so valgrind --tool=callgrind --callgrind-out-file="$work/out" --separate-threads=no \
        "$work/server" "${args[@]}" >"$work/log" 2>&1 &
    vg=$!
    trap 'kill $vg 2>/dev/null; wait $vg 2>/dev/null; rm -rf "$work"' EXIT
    for _ in $(seq 600); do curl -sf -o /dev/null "http://127.0.0.1:$port$ready" && break; sleep 0.2; done
}

# Counting starts here.
callgrind_zero() {
    callgrind_control -z "$vg" >/dev/null 2>&1
}

# Prints the instructions since callgrind_zero; CALLGRIND_OUT=FILE keeps the profile (for
# callgrind_annotate --inclusive=yes --tree=calling).
callgrind_total() {
    callgrind_control -d "$vg" >/dev/null 2>&1
    sleep 1
    local out
    out=$(ls "$work"/out* | tail -1)
    if [ -n "${CALLGRIND_OUT:-}" ]; then cp "$out" "$CALLGRIND_OUT"; fi
    callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}'
}
