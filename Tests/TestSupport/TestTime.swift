import Glibc

/// One factor for the tests' timing: delays a test sets up and the bounds it checks, multiplied
/// together so that the test keeps its meaning on a slower build. `FANOUT_TEST_TIME_SCALE`
/// (default 1; `scripts/tsan.sh` sets it, as ThreadSanitizer runs the code several times slower).
public enum TestTime {
    public static let scale: Double = {
        guard let text = getenv("FANOUT_TEST_TIME_SCALE").map({ String(cString: $0) }),
              let value = Double(text), value >= 1, value <= 100
        else { return 1 }
        return value
    }()

    /// `duration` × the scale.
    public static func scaled(_ duration: Duration) -> Duration { duration * scale }

    /// `milliseconds` × the scale, rounded, for delays written into requests (`delay_ms`).
    public static func ms(_ milliseconds: Int) -> Int { Int((Double(milliseconds) * scale).rounded()) }
}
