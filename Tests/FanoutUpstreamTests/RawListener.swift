import Glibc
import FanoutSync

/// A raw TCP listener on 127.0.0.1 for what the project's server cannot do on purpose.
/// It reads what each client sends first (a request, or a TLS ClientHello), then:
/// - `.reset`: resets the connection (`SO_LINGER` 0: an RST, not a FIN);
/// - `.silent`: never answers, and counts the connection as closed once the client closes it.
/// - `.answerOnce`: answers the first request with a keep-alive `200` (`{}`), then closes the
///   connection without reading the next request when it comes (an RST: it is left unread), as an
///   upstream whose keep-alive timeout runs out just as a request is sent on the connection.
final class RawListener: Sendable {
    enum Mode: Sendable {
        case reset
        case silent
        case answerOnce
    }

    private struct State {
        var accepted = 0
        var firstBytes: [[UInt8]] = []
        var closedByClient = 0
        var closedOnReuse = 0
    }

    let port: Int
    private let socket: Int32
    private let state = Locked(State())

    init(_ mode: Mode) throws {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw TestFailure("socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(socket, 16) == 0 else {
            close(socket)
            throw TestFailure("cannot listen on 127.0.0.1")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        self.socket = socket
        self.port = Int(UInt16(bigEndian: address.sin_port))
        // Threads of their own: blocking in accept(2) or read(2) on a Dispatch worker would starve
        // Swift's cooperative pool (it shares Dispatch's threads on Linux).
        detachThread { [self] in
            while true {
                let connection = accept(socket, nil, nil)
                guard connection >= 0 else { return }
                detachThread { [self] in serve(connection, mode) }
            }
        }
    }

    var accepted: Int { state.withLock { $0.accepted } }
    var firstBytes: [[UInt8]] { state.withLock { $0.firstBytes } }
    var closedByClient: Int { state.withLock { $0.closedByClient } }
    /// Connections closed (`.answerOnce`) when a second request came on them.
    var closedOnReuse: Int { state.withLock { $0.closedOnReuse } }

    func stop() {
        shutdown(socket, Int32(SHUT_RDWR))
        close(socket)
    }

    private func serve(_ connection: Int32, _ mode: Mode) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = read(connection, &buffer, buffer.count)
        state.withLock { state in
            state.accepted += 1
            state.firstBytes.append(Array(buffer.prefix(max(count, 0))))
        }
        switch mode {
        case .reset:
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(connection, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        case .answerOnce:
            guard count > 0, readWholeRequest(connection, Array(buffer.prefix(count))) else { break }
            let answer = Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".utf8)
            guard write(connection, answer, answer.count) == answer.count else { break }
            var next = pollfd(fd: connection, events: Int16(POLLIN), revents: 0)
            guard poll(&next, 1, 60_000) == 1 else { break }
            var probe: UInt8 = 0
            if recv(connection, &probe, 1, Int32(MSG_PEEK)) == 1 {
                state.withLock { $0.closedOnReuse += 1 }
                var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
                setsockopt(connection, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            }
        case .silent:
            // Wait (up to a minute) for the client to close: read returns 0 at its FIN, -1 at its RST.
            var wait = timeval(tv_sec: 60, tv_usec: 0)
            setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
            while true {
                let more = read(connection, &buffer, buffer.count)
                if more > 0 { continue }
                if more == 0 || (errno != EAGAIN && errno != EINTR) {
                    state.withLock { $0.closedByClient += 1 }
                }
                break
            }
        }
        close(connection)
    }
}

/// Reads the rest of a request whose first bytes are `start`: up to the end of the head, then
/// `Content-Length` bytes of body. False if the connection ends first.
private func readWholeRequest(_ connection: Int32, _ start: [UInt8]) -> Bool {
    var received = start
    var buffer = [UInt8](repeating: 0, count: 4096)
    let separator = Array("\r\n\r\n".utf8)
    func headEnd() -> Int? {
        guard received.count >= 4 else { return nil }
        return (0...(received.count - 4)).first { Array(received[$0..<$0 + 4]) == separator }.map { $0 + 4 }
    }
    while headEnd() == nil {
        let count = read(connection, &buffer, buffer.count)
        guard count > 0 else { return false }
        received += buffer.prefix(count)
    }
    let end = headEnd()!
    let head = String(decoding: received[..<end], as: UTF8.self).lowercased()
    let length = head.split(separator: "\r\n")
        .first { $0.hasPrefix("content-length:") }
        .flatMap { Int(String($0.dropFirst("content-length:".count).filter { $0 != " " && $0 != "\t" })) } ?? 0
    while received.count < end + length {
        let count = read(connection, &buffer, buffer.count)
        guard count > 0 else { return false }
        received += buffer.prefix(count)
    }
    return true
}

/// A port on 127.0.0.1 with nothing listening: bound (not listening), read, then closed.
func closedPort() throws -> Int {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard socket >= 0 else { throw TestFailure("socket() failed") }
    defer { close(socket) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) == 0 && getsockname(socket, $0, &length) == 0 }
    }
    guard bound else { throw TestFailure("cannot bind on 127.0.0.1") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Runs `body` on a detached pthread.
func detachThread(_ body: @escaping @Sendable () -> Void) {
    final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    var thread = pthread_t()
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    let created = pthread_create(&thread, nil, { pointer in
        Unmanaged<Box>.fromOpaque(pointer!).takeRetainedValue().body()
        return nil
    }, box)
    if created == 0 {
        pthread_detach(thread)
    } else {
        Unmanaged<Box>.fromOpaque(box).takeRetainedValue().body()
    }
}
