/// A `ContinuousClock` reading as nanoseconds after the process's first one, in one `Int64`.
///
/// `ContinuousClock.Instant` is not frozen: outside the standard library a value that holds one
/// (a timer's heap entry, a dispatcher event) has no fixed layout, and each copy goes through value
/// witnesses. The paths that move such values by the hundred thousand hold this instead.
struct MonotonicTime: Comparable, Sendable {
    /// Saturated ~292 years either way of ``origin``.
    var nanoseconds: Int64

    private static let origin = ContinuousClock.now

    init(_ instant: ContinuousClock.Instant) {
        let (seconds, attoseconds) = (instant - Self.origin).components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let (sum, carry) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
        nanoseconds = overflow || carry ? (seconds < 0 ? .min : .max) : sum
    }

    static var now: MonotonicTime { MonotonicTime(.now) }

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
        let (difference, overflow) = lhs.nanoseconds.subtractingReportingOverflow(rhs.nanoseconds)
        return .nanoseconds(overflow ? (lhs.nanoseconds < rhs.nanoseconds ? .min : .max) : difference)
    }
}
