import Glibc

/// A numeric IPv4 or IPv6 address and port to bind, kept as a `sockaddr` for MHD_OPTION_SOCK_ADDR.
struct SocketAddress {
    private enum Storage {
        case v4(sockaddr_in)
        case v6(sockaddr_in6)
    }

    private var storage: Storage

    var isIPv6: Bool {
        if case .v6 = storage { return true }
        return false
    }

    /// - Throws: ``HTTPServerError`` unless `host` is an IP literal or `localhost` and `port` is in 0...65535.
    init(host: String, port: Int) throws {
        guard (0...65535).contains(port) else { throw HTTPServerError("port \(port) is not in 0...65535") }
        let host = host == "localhost" ? "127.0.0.1" : host
        let literal = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var v4 = sockaddr_in()
        if inet_pton(AF_INET, literal, &v4.sin_addr) == 1 {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = in_port_t(UInt16(port).bigEndian)
            storage = .v4(v4)
            return
        }
        var v6 = sockaddr_in6()
        if inet_pton(AF_INET6, literal, &v6.sin6_addr) == 1 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = in_port_t(UInt16(port).bigEndian)
            storage = .v6(v6)
            return
        }
        throw HTTPServerError("host \"\(host)\" is not an IP address (use e.g. 0.0.0.0, 127.0.0.1 or ::)")
    }

    mutating func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>) -> R) -> R {
        switch storage {
        case .v4(var address):
            return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1, body) }
        case .v6(var address):
            return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1, body) }
        }
    }
}
