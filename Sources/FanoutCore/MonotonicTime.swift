import Glibc

/// A `ContinuousClock` reading as nanoseconds after the process's first one, in one `Int64`.
///
/// `ContinuousClock.Instant` is not frozen: outside the standard library a value that holds one
/// (a timer's heap entry, a dispatcher event) has no fixed layout, and each copy goes through value
/// witnesses. The paths that move such values by the hundred thousand hold this instead.
struct MonotonicTime: Comparable, Sendable {
    /// Saturated ~292 years either way of ``origin``.
    var nanoseconds: Int64

    /// The first reading, as an instant and as `CLOCK_BOOTTIME` nanoseconds (the clock
    /// `ContinuousClock` reads on Linux: the runtime's `swift_get_time`): the instant read between
    /// two clock readings, their midpoint taken, from the closest of a few tries, so the two scales
    /// agree to within a microsecond or so.
    private static let origin: (instant: ContinuousClock.Instant, nanoseconds: Int64) = {
        var best: (instant: ContinuousClock.Instant, nanoseconds: Int64, window: Int64)?
        for _ in 0..<8 {
            let before = bootTimeNanoseconds()
            let instant = ContinuousClock.now
            let after = bootTimeNanoseconds()
            if best == nil || after - before < best!.window {
                best = (instant, before + (after - before) / 2, after - before)
            }
        }
        return (best!.instant, best!.nanoseconds)
    }()
    /// Apart, so that reading the clock copies no `Instant` (not frozen: a copy through witnesses).
    private static let originInstant = origin.instant
    private static let originNanoseconds = origin.nanoseconds

    private static func bootTimeNanoseconds() -> Int64 {
        var reading = timespec()
        clock_gettime(CLOCK_BOOTTIME, &reading)
        return Int64(reading.tv_sec) &* 1_000_000_000 &+ Int64(reading.tv_nsec)
    }

    init(nanoseconds: Int64) {
        self.nanoseconds = nanoseconds
    }

    init(_ instant: ContinuousClock.Instant) {
        let (seconds, attoseconds) = (instant - Self.originInstant).components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let (sum, carry) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
        nanoseconds = overflow || carry ? (seconds < 0 ? .min : .max) : sum
    }

    /// Read from the clock itself: through `ContinuousClock.now`, the `Duration` arithmetic and its
    /// `components` cost ~400 instructions; a dispatcher reads the time for every subtask.
    static var now: MonotonicTime {
        MonotonicTime(nanoseconds: bootTimeNanoseconds() &- originNanoseconds)
    }

    /// `microseconds` later (saturated).
    func advanced(byMicroseconds microseconds: Int64) -> MonotonicTime {
        let (delta, overflow) = microseconds.multipliedReportingOverflow(by: 1000)
        let (sum, carry) = nanoseconds.addingReportingOverflow(delta)
        return MonotonicTime(nanoseconds: overflow || carry ? (microseconds < 0 ? .min : .max) : sum)
    }

    /// Nanoseconds after `start`, saturated at the bounds of `Int64`.
    private func nanoseconds(since start: MonotonicTime) -> Int64 {
        let (difference, overflow) = nanoseconds.subtractingReportingOverflow(start.nanoseconds)
        return overflow ? (nanoseconds < start.nanoseconds ? .min : .max) : difference
    }

    /// Whole microseconds after `start` (saturated at the bounds of `Int64` nanoseconds).
    func microseconds(since start: MonotonicTime) -> Int64 {
        nanoseconds(since: start) / 1000
    }

    static func < (lhs: MonotonicTime, rhs: MonotonicTime) -> Bool {
        lhs.nanoseconds < rhs.nanoseconds
    }

    /// How many milliseconds after `start` this is: as `(self - start).milliseconds`, without
    /// making a `Duration` (whose `components` divide 128-bit attoseconds: ~190 instructions).
    func milliseconds(since start: MonotonicTime) -> Double {
        (Double(nanoseconds) - Double(start.nanoseconds)) / 1e6
    }

    /// How long after `rhs` this is (saturated).
    static func - (lhs: MonotonicTime, rhs: MonotonicTime) -> Duration {
        .nanoseconds(lhs.nanoseconds(since: rhs))
    }
}
