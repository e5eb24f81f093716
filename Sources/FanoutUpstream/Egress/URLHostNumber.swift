/// The IPv4 reading of a URL host, as browsers (WHATWG URL "IPv4 parser") and `inet_aton` do it:
/// one to four dot-separated numbers, each decimal, `0x` hexadecimal or `0`-led octal, the last one
/// filling the remaining bytes. So `2130706433`, `0x7f.1`, `017700000001` and `127.1` are all
/// 127.0.0.1. The egress policy must see these as the address they reach, not as a name.
public enum URLHostNumber: Sendable, Equatable {
    /// The host does not end in a number: it is a domain name.
    case notANumber
    /// The host spells this IPv4 address.
    case address(IPAddress)
    /// The host ends in a number but is no valid IPv4 address (`1.2.3.4.5`, `256.1.1.1`, `0x1g`):
    /// browsers refuse such a URL, and so do we.
    case invalid

    public init(host: String) {
        var parts = host.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count > 1, parts.last?.isEmpty == true { parts.removeLast() }
        guard let last = parts.last, Self.looksNumeric(last) else {
            self = .notANumber
            return
        }
        guard parts.count <= 4 else {
            self = .invalid
            return
        }
        var numbers: [UInt64] = []
        for part in parts {
            guard let number = Self.number(part) else {
                self = .invalid
                return
            }
            numbers.append(number)
        }
        var value: UInt64 = 0
        for number in numbers.dropLast() {
            guard number <= 255 else {
                self = .invalid
                return
            }
            value = value << 8 | number
        }
        let lastBits = UInt64(8 * (5 - numbers.count))
        guard let lastNumber = numbers.last, lastNumber < (1 << lastBits) else {
            self = .invalid
            return
        }
        value = value << lastBits | lastNumber
        self = .address(.v4(UInt32(value)))
    }

    /// WHATWG "ends in a number": all decimal digits, or `0x` followed by hex digits (or nothing).
    private static func looksNumeric(_ part: Substring) -> Bool {
        guard !part.isEmpty else { return false }
        if part.allSatisfy(\.isASCIIDigit) { return true }
        let lower = part.lowercased()
        return lower.hasPrefix("0x") && lower.dropFirst(2).allSatisfy(\.isHexDigit)
    }

    /// One part: `0x…` hex, `0…` octal, else decimal; nil when not a number or too large to matter.
    private static func number(_ part: Substring) -> UInt64? {
        guard !part.isEmpty else { return nil }
        var digits = Substring(part.lowercased())
        var radix = 10
        if digits.hasPrefix("0x") {
            digits = digits.dropFirst(2)
            radix = 16
            if digits.isEmpty { return 0 }
        } else if digits.count > 1, digits.hasPrefix("0") {
            digits = digits.dropFirst()
            radix = 8
        }
        // Anything over 2^32 is invalid anyway; the length guard keeps UInt64 from overflowing.
        guard digits.count <= 24, let value = UInt64(digits, radix: radix), value <= UInt64(UInt32.max) + 1 else {
            return nil
        }
        return value
    }
}
