import FanoutCore
import Glibc

/// An IPv4 or IPv6 address as a number: what the egress policy judges and what a connection goes to.
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4(UInt32)
    case v6(UInt128)

    /// Parses the strict textual forms only: dotted-quad IPv4 (`192.0.2.1`, four decimal parts, no
    /// leading zeros) or IPv6 (`2001:db8::1`, `::ffff:192.0.2.1`), without brackets or zone. The odd
    /// spellings a URL host may use (`2130706433`, `0x7f.1`) are ``URLHostNumber``'s business.
    public init?(_ text: some StringProtocol) {
        let text = String(text)
        if let v4 = Self.parseDottedQuad(text) {
            self = .v4(v4)
        } else if text.contains(":"), let v6 = Self.parseIPv6(text) {
            self = .v6(v6)
        } else {
            return nil
        }
    }

    /// The IPv4 address an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) stands for; otherwise `self`.
    /// A connection to the mapped form reaches the IPv4 address, so both are judged and dialled as IPv4.
    public var unmapped: IPAddress {
        if case .v6(let value) = self, value >> 32 == 0xFFFF {
            return .v4(UInt32(truncatingIfNeeded: value))
        }
        return self
    }

    public var isIPv6: Bool {
        if case .v6 = self { return true }
        return false
    }

    /// Canonical text: dotted quad, or RFC 5952 IPv6 (as `inet_ntop` writes it).
    public var description: String {
        switch self {
        case .v4(let value):
            // Written by hand: interpolating four integers cost ~5,000 instructions, and every
            // attempt names its address (the request's URL, the per-host key).
            return String(unsafeUninitializedCapacity: 15) { text in
                var count = 0
                for shift in stride(from: 24, through: 0, by: -8) {
                    if shift != 24 {
                        text[count] = UInt8(ascii: ".")
                        count += 1
                    }
                    ASCII.writeDecimal(UInt((value >> UInt32(shift)) & 0xFF), into: text, at: &count)
                }
                return count
            }
        case .v6(let value):
            var address = in6_addr()
            withUnsafeMutableBytes(of: &address) { bytes in
                for index in 0..<16 {
                    bytes[index] = UInt8(truncatingIfNeeded: value >> UInt128(8 * (15 - index)))
                }
            }
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)) != nil else { return "::" }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// The form for a URL's authority: IPv6 in brackets.
    public var urlHost: String {
        isIPv6 ? "[\(description)]" : description
    }

    private static func parseDottedQuad(_ text: String) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCIIDigit),
                  part.count == 1 || part.first != "0", let byte = UInt32(part), byte <= 255
            else { return nil }
            value = value << 8 | byte
        }
        return value
    }

    private static func parseIPv6(_ text: String) -> UInt128? {
        var address = in6_addr()
        guard text.withCString({ inet_pton(AF_INET6, $0, &address) }) == 1 else { return nil }
        return withUnsafeBytes(of: &address) { bytes in
            bytes.reduce(UInt128(0)) { $0 << 8 | UInt128($1) }
        }
    }
}
