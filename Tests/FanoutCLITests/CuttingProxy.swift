import Foundation
import Glibc
import FanoutSync
import TestSupport

/// A loopback TCP proxy to 127.0.0.1:`target` that cuts its first connection (both ways) after
/// `cutAfter` bytes from the server, so the client sees a stream dropped mid-job; later
/// connections pass through whole (`cutAfter: .max` cuts none). It records what clients send,
/// to read back every request head (a keep-alive connection carries several).
final class CuttingProxy: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let target: Int
    private let cutAfter: Int
    /// Whether the proxy stops listening at the cut (the server looks gone for good).
    private let vanishAtCut: Bool
    private let state = Locked<(connections: Int, sent: [Int: [UInt8]])>((0, [:]))

    /// Every request head sent through the proxy, connection by connection (the test's bodies are
    /// JSON, which never contains "GET /" or "POST /").
    var requestHeads: [String] {
        let sent = state.withLock { $0.sent }
        var heads: [String] = []
        for connection in sent.keys.sorted() {
            let text = String(decoding: sent[connection] ?? [], as: UTF8.self)
            var rest = text[...]
            while let start = [rest.range(of: "GET /"), rest.range(of: "POST /")].compactMap({ $0 }).min(by: { $0.lowerBound < $1.lowerBound }) {
                guard let end = rest[start.lowerBound...].range(of: "\r\n\r\n") else { break }
                heads.append(String(rest[start.lowerBound..<end.lowerBound]))
                rest = rest[end.upperBound...]
            }
        }
        return heads
    }
    var requestLines: [String] { requestHeads.map { String($0.prefix { $0 != "\r" }) } }

    /// The value of header `name` in each recorded head that has it.
    func header(_ name: String) -> [String] {
        requestHeads.compactMap { head in
            head.split(separator: "\r\n").first { $0.lowercased().hasPrefix(name.lowercased() + ":") }
                .map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) }
        }
    }

    init(target: Int, cutAfter: Int, vanishAtCut: Bool = false) throws {
        self.target = target
        self.cutAfter = cutAfter
        self.vanishAtCut = vanishAtCut
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(listener, pointer, length) == 0 && listen(listener, 16) == 0 && getsockname(listener, pointer, &length) == 0
            }
        }
        guard bound else { throw CLITestFailure("proxy: bind/listen failed: errno \(errno)") }
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else {
                if errno == EINTR { continue }
                return
            }
            let number = state.withLock { state in
                state.connections += 1
                return state.connections
            }
            guard let server = Self.connect(target) else {
                close(client)
                continue
            }
            let limit = number == 1 ? cutAfter : Int.max
            // The second pump to finish closes both sockets.
            let finished = Pair()
            Thread.detachNewThread { [self] in
                pump(from: client, to: server, limit: .max, record: number)
                finished.done(client, server)
            }
            Thread.detachNewThread { [self] in
                if pump(from: server, to: client, limit: limit, record: nil), vanishAtCut { stop() }
                finished.done(client, server)
            }
        }
    }

    /// Copies bytes until EOF or `limit`, keeping them under connection number `record` if given;
    /// at the limit it shuts both sockets down (the cut).
    /// Returns whether it cut.
    @discardableResult
    private func pump(from source: Int32, to destination: Int32, limit: Int, record: Int?) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var copied = 0
        while true {
            let want = min(buffer.count, limit - copied)
            let count = buffer.withUnsafeMutableBytes { recv(source, $0.baseAddress, want, 0) }
            if count <= 0 { break }
            if let record { state.withLock { $0.sent[record, default: []] += buffer[0..<count] } }
            var sent = 0
            while sent < count {
                let n = buffer.withUnsafeBytes { send(destination, $0.baseAddress! + sent, count - sent, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { break }
                sent += n
            }
            copied += count
            if copied >= limit { break }
        }
        shutdown(source, Int32(SHUT_RDWR))
        shutdown(destination, Int32(SHUT_RDWR))
        return copied >= limit
    }

    private final class Pair: Sendable {
        private let count = Locked(0)

        func done(_ a: Int32, _ b: Int32) {
            let finished = count.withLock { count in
                count += 1
                return count
            }
            if finished == 2 {
                close(a)
                close(b)
            }
        }
    }

    private static func connect(_ port: Int) -> Int32? {
        try? RawConnection.loopbackSocket(port: port)
    }
}
