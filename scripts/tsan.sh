#!/usr/bin/env bash
# The test suite under ThreadSanitizer (issue 7 item 13), as CI runs it.
#
#   scripts/tsan.sh [swift test arguments, e.g. --filter FanoutUpstreamTests]
#
# - Builds with --sanitize=thread into .build-tsan (its own scratch path: a sanitized build
#   cannot share .build with the normal one).
# - Runs the tests one at a time (--no-parallel) with FANOUT_TEST_TIME_SCALE (default 4): the
#   instrumented code runs several times slower, and the tests' timing (delays and the bounds
#   checked) is scaled by it; run all at once, instrumented, they load 2 cores far more than that.
# - Fails if any test fails or if ThreadSanitizer printed any warning (TSan reports a race and
#   the run goes on; halt_on_error would stop at the first and hide the rest).
# The output is kept in $TSAN_LOG (default .build-tsan/tsan.log).
set -euo pipefail
cd "$(dirname "$0")/.."

scratch=.build-tsan
# swift-otel does not compile with -sanitize=thread (see Package.swift): this build leaves it out.
export FANOUT_WITHOUT_OTLP=1
log=${TSAN_LOG:-$scratch/tsan.log}
export FANOUT_TEST_TIME_SCALE=${FANOUT_TEST_TIME_SCALE:-4}
# Report every race, with both stacks; do not stop at the first.
export TSAN_OPTIONS=${TSAN_OPTIONS:-"halt_on_error=0 second_deadlock_stack=1 history_size=4"}

mkdir -p "$scratch"
swift build --build-tests --sanitize=thread --scratch-path "$scratch"

status=0
swift test --skip-build --no-parallel --sanitize=thread --scratch-path "$scratch" "$@" 2>&1 | tee "$log" || status=$?

warnings=$(grep -c "WARNING: ThreadSanitizer" "$log" || true)
echo "tsan.sh: tests exit status $status, $warnings ThreadSanitizer warning(s); log in $log"
if [ "$warnings" -gt 0 ]; then
    grep -A3 "WARNING: ThreadSanitizer" "$log" | head -60
    exit 1
fi
exit "$status"
