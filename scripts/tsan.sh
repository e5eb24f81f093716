#!/usr/bin/env bash
# The test suite under ThreadSanitizer (issue 7 item 13), as CI runs it.
#
#   scripts/tsan.sh [swift test arguments, e.g. --filter FanoutUpstreamTests]
#
# - Builds this package's own targets with ThreadSanitizer (FANOUT_TSAN=1, see Package.swift) in
#   .build, where `swift test` built them: the dependencies are reused as they are (not rebuilt,
#   not instrumented), which saves a whole build of the graph (CI: ~8 minutes). Races in our code
#   are reported, including accesses that cross into a dependency's threads; the pthread locks and
#   the concurrency runtime's hand-offs are seen at run time as before. Afterwards the next plain
#   `swift build`/`swift test` rebuilds our targets without it (a minute or two); CI runs this last.
# - Runs the tests one at a time (--no-parallel) with FANOUT_TEST_TIME_SCALE (default 4): the
#   instrumented code runs several times slower, and the tests' timing (delays and the bounds
#   checked) is scaled by it; run all at once, instrumented, they load 2 cores far more than that.
# - Fails if any test fails or if ThreadSanitizer printed any warning (TSan reports a race and
#   the run goes on; halt_on_error would stop at the first and hide the rest).
# The output is kept in $TSAN_LOG (default .build/tsan.log).
set -euo pipefail
cd "$(dirname "$0")/.."

export FANOUT_TSAN=1
log=${TSAN_LOG:-.build/tsan.log}
export FANOUT_TEST_TIME_SCALE=${FANOUT_TEST_TIME_SCALE:-4}
# Report every race, with both stacks; do not stop at the first.
export TSAN_OPTIONS=${TSAN_OPTIONS:-"halt_on_error=0 second_deadlock_stack=1 history_size=4"}

swift build --build-tests

status=0
swift test --skip-build --no-parallel "$@" 2>&1 | tee "$log" || status=$?

warnings=$(grep -c "WARNING: ThreadSanitizer" "$log" || true)
echo "tsan.sh: tests exit status $status, $warnings ThreadSanitizer warning(s); log in $log"
if [ "$warnings" -gt 0 ]; then
    grep -A3 "WARNING: ThreadSanitizer" "$log" | head -60
    exit 1
fi
exit "$status"
