import Testing

@testable import FanoutJobs

@Suite("Wall clock")
struct WallClockTests {
    @Test(arguments: [
        (0, 0, "1970-01-01T00:00:00.000Z"),
        (1_796_116_589, 123, "2026-12-01T09:16:29.123Z"),
        (951_782_400, 7, "2000-02-29T00:00:00.007Z"),
        (253_402_300_799, 999, "9999-12-31T23:59:59.999Z"),
        (253_402_300_800, 1_500, "10000-01-01T00:00:00.999Z"),
    ])
    func writesRFC3339InUTCWithMilliseconds(whole: Int, milliseconds: Int, expected: String) {
        #expect(WallClock.rfc3339(whole: whole, milliseconds: milliseconds) == expected)
    }

    @Test func fractionalSecondsAreCutToMilliseconds() {
        #expect(WallClock.rfc3339(1_796_116_589.1239) == "2026-12-01T09:16:29.123Z")
    }
}
