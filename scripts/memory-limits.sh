#!/usr/bin/env bash
# fanoutd started with the Kubernetes ConfigMap's values and loaded to all its memory limits at
# once (retained lines, running jobs and their stream buffers, request bodies, connections) must
# keep its peak RSS under the pod's memory limit. Loopback only. See scripts/memory_limits.py and
# config/README.md "Memory: the arithmetic".
#
#   scripts/memory-limits.sh [path/to/fanoutd]     (default: .build-ops/release/fanoutd)
#
# Bounded to 90 s.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(scripts/release-binary.sh memory-limits "$@")
exec timeout --kill-after=5 90 python3 scripts/memory_limits.py "$bin"
