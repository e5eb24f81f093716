import Glibc
import NIOPosix

/// Turns a host name into addresses. The runner resolves through this protocol, checks every
/// address against the egress policy and connects to a checked one, so no second lookup can swap
/// in another address (no DNS-rebinding window). Tests substitute a stub.
public protocol HostResolver: Sendable {
    /// The addresses `host` resolves to, in the order to try them.
    /// - Throws: ``ResolutionError`` when the name does not resolve; `CancellationError` when the
    ///   calling task is cancelled (a resolver must give up waiting promptly then).
    func resolve(_ host: String) async throws -> [IPAddress]
}

/// A name that did not resolve (the subtask ends with error code `connect`).
public struct ResolutionError: Error, Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var reason: String

    public init(host: String, reason: String) {
        self.host = host
        self.reason = reason
    }

    public var description: String { "cannot resolve \"\(host)\": \(reason)" }
}

/// `getaddrinfo(3)` (so `/etc/hosts`, search domains and the system's DNS apply), run on NIO's
/// blocking thread pool, never on an event loop or the cooperative pool. A cancelled caller stops
/// waiting at once; the lookup itself finishes in the background and its answer is dropped.
public struct SystemResolver: HostResolver {
    public init() {}

    public func resolve(_ host: String) async throws -> [IPAddress] {
        let waiter = OneShot<[IPAddress]>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                guard waiter.install(continuation) else { return }
                NIOThreadPool.singleton.submit { state in
                    guard case .active = state else {
                        waiter.resume(with: .failure(CancellationError()))
                        return
                    }
                    waiter.resume(with: Result<[IPAddress], any Error> { try Self.getAddresses(host) })
                }
            }
        } onCancel: {
            waiter.resume(with: .failure(CancellationError()))
        }
    }

    static func getAddresses(_ host: String) throws(ResolutionError) -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_ADDRCONFIG
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &list)
        guard status == 0 else {
            throw ResolutionError(host: host, reason: String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(list) }
        var addresses: [IPAddress] = []
        var cursor = list
        while let entry = cursor {
            if let socketAddress = entry.pointee.ai_addr {
                let address: IPAddress?
                switch entry.pointee.ai_family {
                case AF_INET:
                    address = socketAddress.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                        .v4(UInt32(bigEndian: $0.pointee.sin_addr.s_addr))
                    }
                case AF_INET6:
                    address = socketAddress.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                        var bytes = pointer.pointee.sin6_addr
                        return .v6(withUnsafeBytes(of: &bytes) { $0.reduce(UInt128(0)) { $0 << 8 | UInt128($1) } })
                    }
                default:
                    address = nil
                }
                if let address, !addresses.contains(address) { addresses.append(address) }
            }
            cursor = entry.pointee.ai_next
        }
        guard !addresses.isEmpty else { throw ResolutionError(host: host, reason: "no addresses") }
        return addresses
    }
}
