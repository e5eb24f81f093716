import Testing

@testable import FanoutCore

@Suite("MonotonicTime")
struct MonotonicTimeTests {
    /// `now` reads CLOCK_BOOTTIME itself; instants come from `ContinuousClock`: both must be one scale,
    /// or a deadline made from an instant would fire early or late by their difference.
    @Test func nowAgreesWithContinuousClockInstants() {
        for _ in 0..<1000 {
            let before = MonotonicTime(ContinuousClock.now)
            let now = MonotonicTime.now
            let after = MonotonicTime(ContinuousClock.now)
            // The scales' offset is half the origin's reading window: well under 50 µs, even under
            // a sanitizer (timers are in milliseconds).
            #expect(now.nanoseconds >= before.nanoseconds - 50_000)
            #expect(now.nanoseconds <= after.nanoseconds + 50_000)
        }
    }

    @Test func measuresMillisecondsAndMicrosecondsSinceAStart() {
        let start = MonotonicTime(nanoseconds: 5_000_000)
        let later = MonotonicTime(nanoseconds: 17_345_678)
        #expect(later.microseconds(since: start) == 12_345)
        #expect(later.milliseconds(since: start) == 12.345678)
        #expect(start.microseconds(since: later) == -12_345)
        #expect(MonotonicTime(nanoseconds: .max).microseconds(since: MonotonicTime(nanoseconds: -1)) == Int64.max / 1000)
    }
}
