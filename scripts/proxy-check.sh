#!/usr/bin/env bash
# The proxy recipes of deploy/ (nginx, HAProxy) in front of a real fanoutd, on loopback: per-line
# lag through each against direct (median within 5 ms), a client's hang-up passed on to the job
# (its subtasks cancelled within 2 s, detection time from the server's log), and their idle
# timeouts above the longest job deadline. See scripts/proxy_check.py.
#
#   scripts/proxy-check.sh [path/to/fanoutd]     (default: .build-ops/release/fanoutd)
#
# Installs nginx and haproxy from apt if missing. Bounded to 90 s.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(scripts/release-binary.sh proxy-check "$@")
missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v haproxy >/dev/null || missing+=(haproxy)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then sudo="sudo"; fi
    echo "proxy-check: apt-get install ${missing[*]}" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
exec timeout --kill-after=5 90 python3 scripts/proxy_check.py "$bin"
