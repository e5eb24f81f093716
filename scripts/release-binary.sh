#!/usr/bin/env bash
# Prints the absolute path of the fanoutd release binary the ops scripts run.
# usage: scripts/release-binary.sh CALLER [BINARY]
# With BINARY, it must be an executable. Without, it is .build-ops/release/fanoutd, built first if
# missing with the release build of scripts/check-release-binary.sh (and of the Dockerfile).
set -euo pipefail
cd "$(dirname "$0")/.."
caller=$1
if [ $# -gt 1 ]; then
    bin=$2
    [ -x "$bin" ] || { echo "$caller: $bin is not an executable" >&2; exit 2; }
else
    bin=.build-ops/release/fanoutd
    if [ ! -x "$bin" ]; then
        echo "$caller: building $bin" >&2
        swift build -c release --static-swift-stdlib --product fanoutd --scratch-path .build-ops >&2
    fi
fi
echo "$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
