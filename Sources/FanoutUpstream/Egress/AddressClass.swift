/// What kind of address an IP address is, as far as reaching it from a server on a client's behalf
/// goes. Only ``global`` is reachable by default; everything else needs an egress allow-list entry.
public enum AddressClass: String, Sendable, CaseIterable {
    /// Public unicast: the Internet.
    case global = "global unicast"
    /// 0.0.0.0/8 ("this network") and `::`. Connecting to 0.0.0.0 reaches the local host on Linux.
    case unspecified = "unspecified (0.0.0.0/8, ::)"
    /// 127.0.0.0/8 and `::1`.
    case loopback = "loopback (127.0.0.0/8, ::1)"
    /// RFC 1918: 10/8, 172.16/12, 192.168/16.
    case privateUse = "private (RFC 1918)"
    /// 100.64.0.0/10, carrier-grade NAT (RFC 6598).
    case sharedAddressSpace = "carrier-grade NAT (100.64.0.0/10)"
    /// 169.254.0.0/16 (cloud metadata lives at 169.254.169.254) and fe80::/10.
    case linkLocal = "link-local (169.254.0.0/16, fe80::/10)"
    /// 224.0.0.0/4 and ff00::/8.
    case multicast = "multicast (224.0.0.0/4, ff00::/8)"
    /// 255.255.255.255.
    case broadcast = "broadcast (255.255.255.255)"
    /// fc00::/7 (IPv6 unique local, the IPv6 private range).
    case uniqueLocal = "unique local (fc00::/7)"
    /// fec0::/10, deprecated site-local.
    case siteLocal = "site-local (fec0::/10)"
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    case documentation = "documentation"
    /// 198.18.0.0/15 (RFC 2544).
    case benchmarking = "benchmarking (198.18.0.0/15)"
    /// 192.0.0.0/24 and 2001::/23 (IETF protocol assignments, Teredo included).
    case protocolAssignment = "IETF protocol assignment (192.0.0.0/24, 2001::/23)"
    /// 240.0.0.0/4, the 6to4 relay anycast 192.88.99/24, and IPv6 outside 2000::/3 (IPv4-compatible
    /// `::a.b.c.d`, discard-only 100::/64, local-use NAT64 64:ff9b:1::/48, unassigned space).
    case reserved = "reserved"

    /// Classifies an address. Pure: looks at the number only.
    ///
    /// IPv6 forms that carry an IPv4 address to a translator are judged by the IPv4 address they
    /// reach: IPv4-mapped `::ffff:0:0/96`, NAT64 `64:ff9b::/96` and 6to4 `2002::/16`.
    public static func of(_ address: IPAddress) -> AddressClass {
        switch address {
        case .v4(let value): return ofIPv4(value)
        case .v6(let value): return ofIPv6(value)
        }
    }

    private static func ofIPv4(_ value: UInt32) -> AddressClass {
        func within(_ base: UInt32, _ prefix: Int) -> Bool {
            value >> (32 - prefix) == base >> (32 - prefix)
        }
        if within(0x0000_0000, 8) { return .unspecified }
        if within(0x7F00_0000, 8) { return .loopback }
        if within(0x0A00_0000, 8) || within(0xAC10_0000, 12) || within(0xC0A8_0000, 16) { return .privateUse }
        if within(0x6440_0000, 10) { return .sharedAddressSpace }
        if within(0xA9FE_0000, 16) { return .linkLocal }
        if within(0xC000_0000, 24) { return .protocolAssignment }
        if within(0xC000_0200, 24) || within(0xC633_6400, 24) || within(0xCB00_7100, 24) { return .documentation }
        if within(0xC612_0000, 15) { return .benchmarking }
        if within(0xC058_6300, 24) { return .reserved }
        if within(0xE000_0000, 4) { return .multicast }
        if value == 0xFFFF_FFFF { return .broadcast }
        if within(0xF000_0000, 4) { return .reserved }
        return .global
    }

    private static func ofIPv6(_ value: UInt128) -> AddressClass {
        func within(_ base: UInt128, _ prefix: Int) -> Bool {
            value >> UInt128(128 - prefix) == base >> UInt128(128 - prefix)
        }
        func embedded(at shift: Int) -> AddressClass {
            ofIPv4(UInt32(truncatingIfNeeded: value >> UInt128(shift)))
        }
        if value == 0 { return .unspecified }
        if value == 1 { return .loopback }
        if within(0xFFFF_0000_0000, 96) { return embedded(at: 0) }
        if within(0x0064_FF9B_0000_0000_0000_0000_0000_0000, 96) { return embedded(at: 0) }
        if within(0x2002_0000_0000_0000_0000_0000_0000_0000, 16) { return embedded(at: 80) }
        if within(0xFF00_0000_0000_0000_0000_0000_0000_0000, 8) { return .multicast }
        if within(0xFE80_0000_0000_0000_0000_0000_0000_0000, 10) { return .linkLocal }
        if within(0xFEC0_0000_0000_0000_0000_0000_0000_0000, 10) { return .siteLocal }
        if within(0xFC00_0000_0000_0000_0000_0000_0000_0000, 7) { return .uniqueLocal }
        if within(0x2001_0DB8_0000_0000_0000_0000_0000_0000, 32) || within(0x3FFF_0000_0000_0000_0000_0000_0000_0000, 20) {
            return .documentation
        }
        if within(0x2001_0000_0000_0000_0000_0000_0000_0000, 23) { return .protocolAssignment }
        if within(0x2000_0000_0000_0000_0000_0000_0000_0000, 3) { return .global }
        return .reserved
    }
}
