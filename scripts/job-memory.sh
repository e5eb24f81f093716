#!/usr/bin/env bash
# What a decoded job costs in memory, per body shape (bench/job-memory/JobMemory.swift), built from
# the FanoutCore sources alone into .build-jobmem/ (ignored).   scripts/job-memory.sh [tasks]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${JOBMEM_DIR:-$root/.build-jobmem}
mkdir -p "$dir"
swiftc -O -parse-as-library -module-name FanoutCore -import-objc-header "$root/bench/job-memory/malloc.h" \
    "$root"/Sources/FanoutCore/*.swift \
    "$root/bench/job-memory/JobMemory.swift" -o "$dir/job-memory"
"$dir/job-memory" "$@"
