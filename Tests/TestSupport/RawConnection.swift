import Glibc

/// A raw HTTP/1.x client over a non-blocking loopback socket, for tests that need to see bytes as
/// they arrive, speak HTTP/1.0, send `Expect: 100-continue`, stall, or hang up mid-stream.
/// It waits with `Task.sleep`, never blocking a thread of the cooperative pool (the server under
/// test runs its stream tasks on the same pool).
public final class RawConnection: @unchecked Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    public struct Head: Sendable {
        public var version: String
        public var status: Int
        public var headers: [(String, String)]

        public func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
    }

    private let fd: Int32
    private var buffer: [UInt8] = []
    private var closedByPeer = false
    /// Chunked decoding state: bytes left in the current chunk, nil between chunks.
    private var chunkRemaining: Int?
    private var bodyDone = false
    /// Decoded body bytes not yet returned as lines.
    private var body: [UInt8] = []

    public private(set) var isClosed = false

    private init(fd: Int32) { self.fd = fd }

    deinit { if !isClosed { Glibc.close(fd) } }

    /// A blocking socket connected to 127.0.0.1:`port`; `receiveBuffer` shrinks SO_RCVBUF first.
    public static func loopbackSocket(port: Int, receiveBuffer: Int? = nil) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure("socket() failed") }
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let error = errno
            Glibc.close(fd)
            throw Failure("connect to 127.0.0.1:\(port) failed: errno \(error)")
        }
        return fd
    }

    /// Connects to 127.0.0.1:`port`. `receiveBuffer` shrinks SO_RCVBUF (for slow-reader tests).
    public static func connect(port: Int, receiveBuffer: Int? = nil) async throws -> RawConnection {
        let fd = try loopbackSocket(port: port, receiveBuffer: receiveBuffer)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        return RawConnection(fd: fd)
    }

    public func send(_ text: String) async throws {
        try await send(Array(text.utf8))
    }

    public func send(_ bytes: [UInt8]) async throws {
        var offset = 0
        let deadline = ContinuousClock.now + .seconds(10)
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent > 0 {
                offset += sent
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                guard ContinuousClock.now < deadline else { throw Failure("send timed out") }
                try await Task.sleep(for: .milliseconds(1))
            } else {
                throw Failure("send failed: errno \(errno)")
            }
        }
    }

    /// Whether response bytes are waiting (buffered, or readable on the socket), without reading them:
    /// lets a test client, like curl, look for an early answer between pieces of its upload.
    public func hasResponseBytes() -> Bool {
        if !buffer.isEmpty { return true }
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) > 0 && descriptor.revents & Int16(POLLIN) != 0
    }

    /// Closes the socket at once (RST if unread data remains).
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(fd)
    }

    /// Closes with an RST (SO_LINGER 0): the peer sees a reset, as when a client process dies.
    public func abort() {
        guard !isClosed else { return }
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close()
    }

    /// Reads more bytes into the buffer; false at end of stream.
    private func fill(deadline: ContinuousClock.Instant) async throws -> Bool {
        if closedByPeer { return false }
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                buffer.append(contentsOf: chunk[0..<count])
                return true
            }
            if count == 0 {
                closedByPeer = true
                return false
            }
            if errno == EAGAIN || errno == EWOULDBLOCK {
                guard ContinuousClock.now < deadline else { throw Failure("read timed out") }
                try await Task.sleep(for: .milliseconds(1))
                continue
            }
            if errno == ECONNRESET {
                closedByPeer = true
                return false
            }
            throw Failure("recv failed: errno \(errno)")
        }
    }

    /// Whether the peer has closed the connection (reads and discards pending bytes).
    public func peerClosed(within limit: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            do {
                if try await !fill(deadline: deadline) { return true }
            } catch is Failure {
                return closedByPeer
            }
        }
        return closedByPeer
    }

    private func readLineCRLF(deadline: ContinuousClock.Instant) async throws -> String {
        while true {
            if let end = findCRLF() {
                let line = String(decoding: buffer[0..<end], as: UTF8.self)
                buffer.removeFirst(end + 2)
                return line
            }
            guard try await fill(deadline: deadline) else { throw Failure("connection closed before a full line") }
        }
    }

    private func findCRLF() -> Int? {
        guard buffer.count >= 2 else { return nil }
        for index in 0..<(buffer.count - 1) where buffer[index] == 13 && buffer[index + 1] == 10 {
            return index
        }
        return nil
    }

    /// Reads a status line and headers. Interim `100 Continue` heads are returned like any other.
    public func readHead(timeout: Duration = .seconds(10)) async throws -> Head {
        let deadline = ContinuousClock.now + timeout
        let statusLine = try await readLineCRLF(deadline: deadline)
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let status = Int(parts[1]) else { throw Failure("bad status line: \(statusLine)") }
        var headers: [(String, String)] = []
        while true {
            let line = try await readLineCRLF(deadline: deadline)
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]), String(line[line.index(after: colon)...]).trimmingCharacters(in: " ")))
        }
        chunkRemaining = nil
        bodyDone = false
        body = []
        return Head(version: String(parts[0]), status: status, headers: headers)
    }

    /// Reads the whole body of a response with the given head.
    public func readBody(_ head: Head, timeout: Duration = .seconds(30)) async throws -> [UInt8] {
        var all: [UInt8] = []
        while let bytes = try await readBodyPart(head, timeout: timeout) { all += bytes }
        return all
    }

    /// The next decoded piece of the body (a chunk on chunked responses), nil at its end.
    public func readBodyPart(_ head: Head, timeout: Duration = .seconds(30)) async throws -> [UInt8]? {
        let deadline = ContinuousClock.now + timeout
        if bodyDone { return nil }
        if head.header("Transfer-Encoding")?.lowercased().contains("chunked") == true {
            let sizeLine = try await readLineCRLF(deadline: deadline)
            guard let size = Int(sizeLine.split(separator: ";")[0], radix: 16) else { throw Failure("bad chunk size: \(sizeLine)") }
            if size == 0 {
                _ = try await readLineCRLF(deadline: deadline)
                bodyDone = true
                return nil
            }
            while buffer.count < size + 2 {
                guard try await fill(deadline: deadline) else { throw Failure("connection closed inside a chunk") }
            }
            let chunk = Array(buffer[0..<size])
            buffer.removeFirst(size + 2)
            return chunk
        }
        if let length = head.header("Content-Length").flatMap(Int.init) {
            while buffer.count < length {
                guard try await fill(deadline: deadline) else { throw Failure("connection closed inside the body") }
            }
            let bytes = Array(buffer[0..<length])
            buffer.removeFirst(length)
            bodyDone = true
            return bytes
        }
        // Close-delimited (HTTP/1.0 streaming).
        if buffer.isEmpty, try await !fill(deadline: deadline) {
            bodyDone = true
            return nil
        }
        defer { buffer.removeAll() }
        return buffer
    }

    /// The next NDJSON line of the body (without `\n`), nil at the body's end.
    public func readLine(_ head: Head, timeout: Duration = .seconds(30)) async throws -> String? {
        while true {
            if let newline = body.firstIndex(of: 10) {
                let line = String(decoding: body[0..<newline], as: UTF8.self)
                body.removeFirst(newline + 1)
                return line
            }
            guard let part = try await readBodyPart(head, timeout: timeout) else {
                guard body.isEmpty else { throw Failure("body ended inside a line") }
                return nil
            }
            body += part
        }
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        var slice = Substring(self)
        while slice.first == set { slice.removeFirst() }
        while slice.last == set { slice.removeLast() }
        return String(slice)
    }
}
