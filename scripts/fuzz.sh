#!/usr/bin/env bash
# Fuzzes JSONParser + JobDecoder with libFuzzer and AddressSanitizer for N seconds (default 60).
# The target is built from the FanoutCore sources (and FanoutSync, its one lock) with swiftc, no
# package build, into
# $FUZZ_DIR (default .build-fuzz/, ignored by git). The corpus starts from Fuzz/corpus/ (job bodies
# from the tests) and grows in $FUZZ_DIR/corpus. Exits non-zero on a crash; the input that caused
# it is left in $FUZZ_DIR as crash-*.
#   scripts/fuzz.sh [seconds] [extra libFuzzer flags...]
set -euo pipefail
seconds=${1:-60}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${FUZZ_DIR:-$root/.build-fuzz}
mkdir -p "$dir/corpus"
binary=$dir/job-decoder-fuzz

sync=("$root"/Sources/FanoutSync/*.swift)
sources=("$root"/Sources/FanoutCore/*.swift "$root/Fuzz/JobDecoderFuzz.swift")
if [[ ! -x $binary ]] || [[ -n $(find "${sources[@]}" "${sync[@]}" -newer "$binary" 2>/dev/null) ]]; then
    echo "building $binary"
    # FanoutSync first, as a module of its own (FanoutCore imports it), instrumented the same way.
    swiftc -sanitize=address -parse-as-library -O -g -module-name FanoutSync -emit-module \
        -emit-module-path "$dir/FanoutSync.swiftmodule" -emit-object -wmo "${sync[@]}" -o "$dir/FanoutSync.o"
    # ld.gold warns "cannot export local symbol" for the fuzzer entry points: harmless.
    swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name FanoutCore -I "$dir" \
        "${sources[@]}" "$dir/FanoutSync.o" -o "$binary" 2> >(grep -v "cannot export local symbol" >&2)
fi

cd "$dir"
"$binary" "$dir/corpus" "$root/Fuzz/corpus" \
    -dict="$root/Fuzz/json.dict" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -max_total_time="$seconds" -print_final_stats=1 "$@"
