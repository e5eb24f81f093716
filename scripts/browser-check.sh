#!/usr/bin/env bash
# A page on another origin streams a job from fanoutd in real headless Chromium (fetch +
# getReader(), arrival time of every line recorded), and a page on a disallowed origin is refused.
# Loopback only; Chromium is kept off the network. See scripts/browser_check.py.
#
#   scripts/browser-check.sh [path/to/fanoutd]     (default: .build-ops/release/fanoutd)
#
# Installs Debian's chromium from apt if missing. Bounded to 60 s (the install apart).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(scripts/release-binary.sh browser-check "$@")
if ! command -v chromium >/dev/null; then
    sudo=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then sudo="sudo"; fi
    echo "browser-check: apt-get install chromium" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >&2
fi
exec timeout --kill-after=5 60 python3 scripts/browser_check.py "$bin"
