import FanoutCore
import Glibc

/// When a failed attempt is tried again, and after how long.
///
/// Only idempotent methods are retried (and hedged), only after a connection failure or a 429, 502,
/// 503 or 504, and never past the subtask's deadline: a retry whose wait would end after the
/// deadline is not made, and the last failure is the subtask's result.
public struct RetryPolicy: Sendable, Equatable {
    /// The backoff before retry n (1-based) is uniformly random in 0 ..< min(maxDelay, baseDelay × 2^(n-1))
    /// ("full jitter"), unless the upstream sent `Retry-After`, which is then used as it is.
    public var baseDelay: Duration
    public var maxDelay: Duration
    /// The most `retries` a subtask may ask for.
    public var maxRetries: Int

    public init(baseDelay: Duration = .milliseconds(100), maxDelay: Duration = .seconds(5), maxRetries: Int = 10) {
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxRetries = maxRetries
    }

    public static let idempotentMethods: Set<String> = ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]
    public static let retryableStatuses: Set<Int> = [429, 502, 503, 504]

    /// The full-jitter backoff before retry `retry` (1 for the first retry).
    public func backoff(beforeRetry retry: Int) -> Duration {
        let exponent = min(max(retry - 1, 0), 30)
        let ceiling = min(maxDelay, baseDelay * (1 << exponent))
        let nanoseconds = ceiling.wholeNanoseconds
        guard nanoseconds > 0 else { return .zero }
        return .nanoseconds(Int64.random(in: 0..<nanoseconds))
    }
}

/// The `Retry-After` response header (RFC 9110 §10.2.3): delay-seconds or an HTTP date.
public enum RetryAfter {
    /// The wait it asks for; nil when the value is neither form. A date in the past is zero.
    /// - Parameter now: Seconds since the Unix epoch (the wall clock by default).
    public static func delay(_ value: String, now: Double = wallClockSeconds()) -> Duration? {
        let value = String(value.trimmingASCIIWhitespace())
        if !value.isEmpty, value.allSatisfy(\.isASCIIDigit) {
            guard value.count <= 9, let seconds = Int64(value) else { return nil }
            return .seconds(seconds)
        }
        guard let date = parseHTTPDate(value) else { return nil }
        let seconds = Double(date) - now
        return seconds > 0 ? .milliseconds(Int64(seconds * 1000)) : .zero
    }

    /// IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`, as seconds since the epoch.
    static func parseHTTPDate(_ text: String) -> Int64? {
        let parts = text.split(separator: " ")
        guard parts.count == 6, parts[0].hasSuffix(","), parts[5] == "GMT",
              let day = Int64(parts[1]), (1...31).contains(day),
              let month = months.firstIndex(of: String(parts[2])),
              let year = Int64(parts[3]), (1970...9999).contains(year)
        else { return nil }
        let clock = parts[4].split(separator: ":")
        guard clock.count == 3, let hour = Int64(clock[0]), let minute = Int64(clock[1]), let second = Int64(clock[2]),
              (0...23).contains(hour), (0...59).contains(minute), (0...60).contains(second)
        else { return nil }
        return daysSinceEpoch(year: year, month: Int64(month + 1), day: day) * 86_400 + hour * 3_600 + minute * 60 + second
    }

    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
    private static func daysSinceEpoch(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The wall clock, in seconds since the epoch.
    public static func wallClockSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
