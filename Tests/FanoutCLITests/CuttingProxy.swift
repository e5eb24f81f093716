import Foundation
import Glibc
import Synchronization

/// A loopback TCP proxy to 127.0.0.1:`target` that cuts its first connection (both ways) after
/// `cutAfter` bytes from the server, so the client sees a stream dropped mid-job; later
/// connections pass through whole. It records each connection's request line.
final class CuttingProxy: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let target: Int
    private let cutAfter: Int
    private let state = Mutex<(connections: Int, requestLines: [String])>((0, []))

    var requestLines: [String] { state.withLock { $0.requestLines } }

    init(target: Int, cutAfter: Int) throws {
        self.target = target
        self.cutAfter = cutAfter
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
                pump(from: client, to: server, limit: .max, record: true)
                finished.done(client, server)
            }
            Thread.detachNewThread { [self] in
                pump(from: server, to: client, limit: limit, record: false)
                finished.done(client, server)
            }
        }
    }

    /// Copies bytes until EOF or `limit`; at the limit it shuts both sockets down (the cut).
    private func pump(from source: Int32, to destination: Int32, limit: Int, record: Bool) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var copied = 0
        var recording = record
        var firstBytes: [UInt8] = []
        while true {
            let want = min(buffer.count, limit - copied)
            let count = buffer.withUnsafeMutableBytes { recv(source, $0.baseAddress, want, 0) }
            if count <= 0 { break }
            if recording {
                firstBytes += buffer[0..<count]
                if let end = firstBytes.firstIndex(of: 0x0D) {
                    let line = String(decoding: firstBytes[..<end], as: UTF8.self)
                    state.withLock { $0.requestLines.append(line) }
                    recording = false
                }
            }
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
    }

    private final class Pair: Sendable {
        private let count = Mutex(0)

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
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(fd)
            return nil
        }
        return fd
    }
}
