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
    public static func rfc3339(whole: Int, milliseconds: Int) -> String {
        var whole = time_t(whole)
        var parts = tm()
        gmtime_r(&whole, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(width - text.count, 0)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(min(milliseconds, 999)), 3))Z"
    }
}
