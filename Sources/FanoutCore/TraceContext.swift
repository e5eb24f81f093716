import Synchronization

/// The W3C Trace Context (`traceparent`, `tracestate`; https://www.w3.org/TR/trace-context/) of
/// one span: what a job continues from its request, and what each upstream request carries.
/// A value with no storage of its own beyond ``state``.
public struct TraceContext: Sendable, Equatable {
    /// The trace ID, 16 bytes, as two big-endian halves; never all zero.
    public var traceID: (high: UInt64, low: UInt64)
    /// This span's ID; never zero.
    public var spanID: UInt64
    /// Trace flags. Only bit 0, `sampled`, is defined (level 1); the others are sent as zero.
    public var flags: UInt8
    /// The `tracestate` list as received (checked, else dropped), passed on unchanged; or empty.
    public var state: String

    public init(traceID: (high: UInt64, low: UInt64), spanID: UInt64, flags: UInt8, state: String = "") {
        self.traceID = traceID
        self.spanID = spanID
        self.flags = flags & Self.sampledFlag
        self.state = state
    }

    public static let sampledFlag: UInt8 = 0x01

    /// The caller may have recorded this span (the `sampled` flag).
    public var sampled: Bool { flags & Self.sampledFlag != 0 }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.traceID == rhs.traceID && lhs.spanID == rhs.spanID && lhs.flags == rhs.flags && lhs.state == rhs.state
    }

    /// The first span of a new trace: random trace and span IDs.
    public static func newTrace(sampled: Bool) -> TraceContext {
        TraceContext(
            traceID: (TraceIDs.next(), TraceIDs.next()), spanID: TraceIDs.next(),
            flags: sampled ? sampledFlag : 0
        )
    }

    /// A child span in the same trace: a new span ID, the same flags and state.
    public func child() -> TraceContext {
        var child = self
        child.spanID = TraceIDs.next()
        return child
    }

    /// `00-<trace-id>-<span-id>-<flags>`.
    public var traceparent: String {
        String(unsafeUninitializedCapacity: 55) { buffer in
            buffer[0] = UInt8(ascii: "0")
            buffer[1] = UInt8(ascii: "0")
            buffer[2] = UInt8(ascii: "-")
            Self.writeHex(traceID.high, digits: 16, into: buffer, at: 3)
            Self.writeHex(traceID.low, digits: 16, into: buffer, at: 19)
            buffer[35] = UInt8(ascii: "-")
            Self.writeHex(spanID, digits: 16, into: buffer, at: 36)
            buffer[52] = UInt8(ascii: "-")
            Self.writeHex(UInt64(flags), digits: 2, into: buffer, at: 53)
            return 55
        }
    }

    /// 32 lower-case hex digits.
    public var traceIDHex: String {
        String(unsafeUninitializedCapacity: 32) { buffer in
            Self.writeHex(traceID.high, digits: 16, into: buffer, at: 0)
            Self.writeHex(traceID.low, digits: 16, into: buffer, at: 16)
            return 32
        }
    }

    /// 16 lower-case hex digits.
    public var spanIDHex: String {
        String(unsafeUninitializedCapacity: 16) { buffer in
            Self.writeHex(spanID, digits: 16, into: buffer, at: 0)
            return 16
        }
    }

    private static func writeHex(_ value: UInt64, digits: Int, into buffer: UnsafeMutableBufferPointer<UInt8>, at start: Int) {
        for index in 0..<digits {
            let digit = UInt8((value >> UInt64(4 * (digits - 1 - index))) & 0xF)
            buffer[start + index] = digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10
        }
    }
}

extension TraceContext {
    /// Parses the request's headers as the W3C recommendation says a receiver must: nil, so that
    /// a new trace starts, for a `traceparent` that is absent or invalid (wrong length or
    /// delimiters, upper-case or non-hex digits, version `ff`, an all-zero trace or parent ID, or
    /// a version-00 value with anything after the flags). A later version is read by its first
    /// four fields. An invalid `tracestate` (bad key or value, a duplicate key, more than 32
    /// members, over 8192 bytes) is dropped while the `traceparent` is kept.
    public init?(traceparent: String?, tracestate: String?) {
        guard let traceparent else { return nil }
        let parsed: (traceID: (UInt64, UInt64), spanID: UInt64, flags: UInt8)? = traceparent.utf8.withContiguousStorageIfAvailable {
            Self.parseTraceparent($0)
        } ?? Array(traceparent.utf8).withUnsafeBufferPointer { Self.parseTraceparent($0) }
        guard let parsed else { return nil }
        var state = ""
        if let tracestate, Self.isValidTracestate(tracestate) { state = tracestate }
        self.init(traceID: parsed.traceID, spanID: parsed.spanID, flags: parsed.flags, state: state)
    }

    private static func parseTraceparent(_ text: UnsafeBufferPointer<UInt8>) -> (traceID: (UInt64, UInt64), spanID: UInt64, flags: UInt8)? {
        // Optional whitespace around a header value is not part of it.
        var start = 0
        var end = text.count
        while start < end, text[start] == 0x20 || text[start] == 0x09 { start += 1 }
        while end > start, text[end - 1] == 0x20 || text[end - 1] == 0x09 { end -= 1 }
        guard end - start >= 55 else { return nil }
        func hex(_ from: Int, _ count: Int) -> UInt64? {
            var value: UInt64 = 0
            for offset in 0..<count {
                let byte = text[start + from + offset]
                // Lower-case only, as the W3C format requires.
                guard let digit = ASCII.hexDigitValue(byte), byte < UInt8(ascii: "A") || byte > UInt8(ascii: "F") else { return nil }
                value = value << 4 | UInt64(digit)
            }
            return value
        }
        guard let version = hex(0, 2), version != 0xFF,
              text[start + 2] == UInt8(ascii: "-"), text[start + 35] == UInt8(ascii: "-"), text[start + 52] == UInt8(ascii: "-"),
              let high = hex(3, 16), let low = hex(19, 16), let span = hex(36, 16), let flags = hex(53, 2)
        else { return nil }
        // Version 00 is exactly 55 characters; a later one may append fields after a dash.
        if version == 0 { guard end - start == 55 else { return nil } } else if end - start > 55, text[start + 55] != UInt8(ascii: "-") { return nil }
        guard high | low != 0, span != 0 else { return nil }
        return ((high, low), span, UInt8(flags))
    }

    /// The `tracestate` grammar of W3C Trace Context §3.3: comma-separated `key=value` members
    /// (empty members allowed), at most 32, keys unique.
    static func isValidTracestate(_ text: String) -> Bool {
        guard text.utf8.count <= 8192 else { return false }
        var keys: [Substring] = []
        for rawMember in text.split(separator: ",", omittingEmptySubsequences: false) {
            let member = rawMember.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed()
            if member.isEmpty { continue }
            let memberText = Substring(String(member))
            guard let equals = memberText.firstIndex(of: "=") else { return false }
            let key = memberText[..<equals]
            let value = memberText[memberText.index(after: equals)...]
            guard isValidKey(key), isValidValue(value), !keys.contains(key) else { return false }
            keys.append(key)
            if keys.count > 32 { return false }
        }
        return true
    }

    /// `simple-key` or `tenant-id@system-id`.
    private static func isValidKey(_ key: Substring) -> Bool {
        func isLower(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") }
        func isKeyChar(_ byte: UInt8) -> Bool {
            isLower(byte) || ASCII.isDigit(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
                || byte == UInt8(ascii: "*") || byte == UInt8(ascii: "/")
        }
        let bytes = Array(key.utf8)
        if let at = bytes.firstIndex(of: UInt8(ascii: "@")) {
            let tenant = bytes[..<at]
            let system = bytes[(at + 1)...]
            guard let first = tenant.first, isLower(first) || ASCII.isDigit(first), tenant.count <= 241, tenant.allSatisfy(isKeyChar),
                  let systemFirst = system.first, isLower(systemFirst), system.count <= 14, system.allSatisfy(isKeyChar)
            else { return false }
            return true
        }
        guard let first = bytes.first, isLower(first), bytes.count <= 256 else { return false }
        return bytes.allSatisfy(isKeyChar)
    }

    /// 1 to 256 printable ASCII characters except `,` and `=`, not ending in a space.
    private static func isValidValue(_ value: Substring) -> Bool {
        let bytes = Array(value.utf8)
        guard !bytes.isEmpty, bytes.count <= 256, bytes.last != 0x20 else { return false }
        return bytes.allSatisfy { $0 >= 0x20 && $0 <= 0x7E && $0 != UInt8(ascii: ",") && $0 != UInt8(ascii: "=") }
    }
}

/// Trace and span IDs: SplitMix64 over a process-wide counter that starts from a random seed.
/// Unique within the process, evenly spread, and one atomic add each; `SystemRandomNumberGenerator`
/// costs a getrandom(2) system call per value, three per job that starts a trace. Static, with no
/// instance: a `var` of an empty generator struct has no storage of its own, and ThreadSanitizer's
/// exclusivity checks then saw two threads' `mutating` calls on whatever address it was given.
enum TraceIDs {
    private static let seed: UInt64 = {
        var random = SystemRandomNumberGenerator()
        return random.next()
    }()
    private static let counter = Atomic<UInt64>(0)

    /// A new ID, never zero (an all-zero W3C ID is invalid).
    static func next() -> UInt64 {
        while true {
            let count = counter.wrappingAdd(1, ordering: .relaxed).newValue
            var mixed = seed &+ count &* 0x9E37_79B9_7F4A_7C15
            mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
            mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
            let value = mixed ^ (mixed >> 31)
            if value != 0 { return value }
        }
    }
}
