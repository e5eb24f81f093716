#!/usr/bin/env bash
# What a decoded job costs in memory, per body shape (bench/job-memory/JobMemory.swift), built from
# the FanoutCore (and FanoutSync) sources alone into .build-jobmem/ (ignored).   scripts/job-memory.sh [tasks]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${JOBMEM_DIR:-$root/.build-jobmem}
mkdir -p "$dir"
# FanoutSync first, as a module of its own (FanoutCore imports it for its one lock), as scripts/fuzz.sh does.
swiftc -O -parse-as-library -module-name FanoutSync -emit-module -emit-module-path "$dir/FanoutSync.swiftmodule" \
    -emit-object -wmo "$root"/Sources/FanoutSync/*.swift -o "$dir/FanoutSync.o"
swiftc -O -parse-as-library -module-name FanoutCore -I "$dir" -import-objc-header "$root/bench/job-memory/malloc.h" \
    "$root"/Sources/FanoutCore/*.swift \
    "$root/bench/job-memory/JobMemory.swift" "$dir/FanoutSync.o" -o "$dir/job-memory"
"$dir/job-memory" "$@"
