import FanoutCore

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

    /// Read on the host's UTF-8 bytes: a part is a number only if every byte is a digit of its radix
    /// (no sign, no spaces), as in the WHATWG parser.
    public init(host: String) {
        let bytes = Array(host.utf8)
        var parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        if parts.count > 1, parts.last?.isEmpty == true { parts.removeLast() }
        guard let last = parts.last, Self.looksNumeric(last) else {
            self = .notANumber
            return
        }
        guard parts.count <= 4 else {
            self = .invalid
            return
        }
        var value: UInt64 = 0
        for (position, part) in parts.enumerated() {
            guard let number = Self.number(part) else {
                self = .invalid
                return
            }
            if position < parts.count - 1 {
                guard number <= 255 else {
                    self = .invalid
                    return
                }
                value = value << 8 | number
            } else {
                // The last part fills the bytes the others left.
                let lastBits = UInt64(8 * (4 - position))
                guard number < (1 << lastBits) else {
                    self = .invalid
                    return
                }
                value = value << lastBits | number
            }
        }
        self = .address(.v4(UInt32(value)))
    }

    /// WHATWG "ends in a number": all decimal digits, or `0x` followed by hex digits (or nothing).
    private static func looksNumeric(_ part: ArraySlice<UInt8>) -> Bool {
        guard !part.isEmpty else { return false }
        if part.allSatisfy({ digit($0, radix: 10) != nil }) { return true }
        return hasHexPrefix(part) && part.dropFirst(2).allSatisfy { digit($0, radix: 16) != nil }
    }

    private static func hasHexPrefix(_ part: ArraySlice<UInt8>) -> Bool {
        part.count >= 2 && part.first == UInt8(ascii: "0") && (part.dropFirst().first.map { $0 | 0x20 } == UInt8(ascii: "x"))
    }

    /// A digit's value in `radix` (8, 10 or 16; hex in either case), nil if it is none.
    private static func digit(_ byte: UInt8, radix: UInt64) -> UInt64? {
        guard let value = ASCII.hexDigitValue(byte).map(UInt64.init) else { return nil }
        return value < radix ? value : nil
    }

    /// One part: `0x…` hex, `0…` octal, else decimal; nil when not a number or too large to matter.
    private static func number(_ part: ArraySlice<UInt8>) -> UInt64? {
        guard !part.isEmpty else { return nil }
        var digits = part
        var radix: UInt64 = 10
        if hasHexPrefix(part) {
            digits = part.dropFirst(2)
            radix = 16
            if digits.isEmpty { return 0 }
        } else if part.count > 1, part.first == UInt8(ascii: "0") {
            digits = part.dropFirst()
            radix = 8
        }
        // Anything over 2^32 is invalid anyway; stopping there keeps UInt64 from overflowing.
        var value: UInt64 = 0
        for byte in digits {
            guard let digit = digit(byte, radix: radix) else { return nil }
            value = value * radix + digit
            guard value <= UInt64(UInt32.max) + 1 else { return nil }
        }
        return value
    }
}
