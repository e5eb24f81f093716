#!/usr/bin/env bash
# What a decoded job costs in memory, per body shape (bench/job-memory/JobMemory.swift), built from
# the FanoutCore (and FanoutSync) sources alone into .build-jobmem/ (ignored).   scripts/job-memory.sh [tasks]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/core-tool.sh"
dir=${JOBMEM_DIR:-$root/.build-jobmem}
build_core_tool "$dir" job-memory -import-objc-header "$root/bench/job-memory/malloc.h" "$root/bench/job-memory/JobMemory.swift"
"$dir/job-memory" "$@"
