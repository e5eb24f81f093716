import FanoutCore
import Glibc

/// Wall-clock time for the status document (the dispatcher's clocks are monotonic).
public enum WallClock {
    /// Seconds since 1970-01-01T00:00:00Z.
    public static var now: Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// `2026-12-01T09:16:29.123Z`.
    public static func rfc3339(_ seconds: Double) -> String {
        let whole = Int(seconds.rounded(.down))
        return rfc3339(whole: whole, milliseconds: Int(((seconds - Double(whole)) * 1000).rounded(.down)))
    }

    /// The same from whole seconds since 1970 and the milliseconds past them (the log's timestamps).
    /// Written digit by digit: every log line has one, and interpolating seven padded numbers cost
    /// more than the rest of the line.
    public static func rfc3339(whole: Int, milliseconds: Int) -> String {
        var whole = time_t(whole)
        var parts = tm()
        gmtime_r(&whole, &parts)
        return String(unsafeUninitializedCapacity: 40) { text in
            var count = 0
            /// `value` in decimal, at least `width` digits (zero-padded).
            func put(_ value: Int32, _ width: Int) {
                if value < 0 {
                    text[count] = UInt8(ascii: "-")
                    count += 1
                }
                ASCII.writeDecimal(UInt(value.magnitude), minimumDigits: width, into: text, at: &count)
            }
            func put(_ byte: Unicode.Scalar) {
                text[count] = UInt8(ascii: byte)
                count += 1
            }
            put(parts.tm_year + 1900, 4)
            put("-")
            put(parts.tm_mon + 1, 2)
            put("-")
            put(parts.tm_mday, 2)
            put("T")
            put(parts.tm_hour, 2)
            put(":")
            put(parts.tm_min, 2)
            put(":")
            put(parts.tm_sec, 2)
            put(".")
            put(Int32(min(max(milliseconds, 0), 999)), 3)
            put("Z")
            return count
        }
    }
}
