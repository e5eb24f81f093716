#!/usr/bin/env bash
# How long decoding a job body takes (bench/job-decode/JobDecode.swift), built from the FanoutCore
# (and FanoutSync) sources alone into .build-jobdecode/ (ignored).
# usage: scripts/job-decode.sh BODY.json [ROUNDS [THREADS]]   (bench/jobfiles.py writes the burst's body)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/core-tool.sh"
dir=${JOBDECODE_DIR:-$root/.build-jobdecode}
build_core_tool "$dir" job-decode -wmo "$root/bench/job-decode/JobDecode.swift"
"$dir/job-decode" "$@"
