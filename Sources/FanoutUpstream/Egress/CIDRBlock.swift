/// An address block such as `10.0.0.0/8` or `fd00::/8`; a bare address is a block of one.
public struct CIDRBlock: Sendable, Hashable, CustomStringConvertible {
    public let base: IPAddress
    public let prefixLength: Int

    /// Parses `address` or `address/prefix` (strict address forms; host bits must be zero, so a
    /// typo like `10.0.0.1/8` is caught rather than silently widened).
    public init?(_ text: some StringProtocol) {
        let pieces = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(pieces[0]) else { return nil }
        let width = address.isIPv6 ? 128 : 32
        var prefix = width
        if pieces.count == 2 {
            guard !pieces[1].isEmpty, pieces[1].allSatisfy(\.isASCIIDigit), pieces[1].count <= 3,
                  let parsed = Int(pieces[1]), parsed <= width
            else { return nil }
            prefix = parsed
        }
        guard Self.masked(address, prefix) == address else { return nil }
        self.base = address
        self.prefixLength = prefix
    }

    /// Whether `address` lies in the block (an IPv4 block never holds an IPv6 address or vice versa;
    /// map IPv4-mapped addresses with ``IPAddress/unmapped`` first).
    public func contains(_ address: IPAddress) -> Bool {
        switch (base, address) {
        case (.v4, .v4), (.v6, .v6): Self.masked(address, prefixLength) == base
        default: false
        }
    }

    public var description: String { "\(base)/\(prefixLength)" }

    private static func masked(_ address: IPAddress, _ prefix: Int) -> IPAddress {
        switch address {
        case .v4(let value):
            return .v4(prefix == 0 ? 0 : value & (UInt32.max << UInt32(32 - prefix)))
        case .v6(let value):
            return .v6(prefix == 0 ? 0 : value & (UInt128.max << UInt128(128 - prefix)))
        }
    }
}
