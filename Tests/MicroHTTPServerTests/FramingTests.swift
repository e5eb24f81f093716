import Foundation
import Logging
import MicroHTTPServer
import TestSupport
import Testing

/// Runs `body` against a server with the given configuration changes (ephemeral port, test handler).
private func withServer<T>(
    _ configure: (inout HTTPServerConfiguration) -> Void = { _ in },
    _ body: (HTTPServer, Int) async throws -> T
) async throws -> T {
    var configuration = HTTPServerConfiguration(
        host: "127.0.0.1", port: 0, threads: 2, connectionLimit: 256, maxBodyBytes: 1024, watchdogIntervalMilliseconds: 100
    )
    configure(&configuration)
    let server = HTTPServer(configuration: configuration, handler: TestHandler(probe: StreamProbe()), logger: Logger(label: "test"))
    try server.start()
    let port = try #require(server.port)
    // The server's tasks (bodies answered off its threads, streams) run here until shutdown.
    async let serving: Void = server.run()
    do {
        let result = try await body(server, port)
        await server.shutdown(gracePeriod: .seconds(1))
        await serving
        return result
    } catch {
        await server.shutdown(gracePeriod: .seconds(1))
        await serving
        throw error
    }
}

/// A head the server must refuse, and the status it must refuse it with.
struct MalformedHead: CustomTestStringConvertible, Sendable {
    var name: String
    var request: [UInt8]
    var status: Int
    var testDescription: String { name }

    init(_ name: String, _ request: String, _ status: Int = 400) {
        self.name = name
        self.request = Array(request.utf8)
        self.status = status
    }

    /// A smuggled `GET /hello` follows each body: it must never be answered.
    static let smuggled = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"

    static let all: [MalformedHead] = [
        MalformedHead("Content-Length with Transfer-Encoding",
                      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled),
        MalformedHead("two different Content-Length values",
                      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!" + smuggled),
        MalformedHead("space before the colon of Transfer-Encoding",
                      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n"
                          + "\(String(smuggled.utf8.count, radix: 16))\r\n\(smuggled)\r\n0\r\n\r\n"),
        MalformedHead("Transfer-Encoding on HTTP/1.0",
                      "POST /echo HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled),
        MalformedHead("a space inside a header name", "GET /headers HTTP/1.1\r\nHost: x\r\nX Probe: 1\r\n\r\n" + smuggled),
        MalformedHead("HTTP/1.1 without Host", "GET /hello HTTP/1.1\r\n\r\n" + smuggled),
        MalformedHead("two Host headers", "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" + smuggled),
        MalformedHead("NUL in a header value", "GET /headers HTTP/1.1\r\nHost: x\r\nX-Probe: a\u{0}b\r\n\r\n" + smuggled),
        MalformedHead("NUL in the URL", "GET /hello\u{0}x HTTP/1.1\r\nHost: x\r\n\r\n" + smuggled),
        MalformedHead("%00 in the URL", "GET /hello%00x HTTP/1.1\r\nHost: x\r\n\r\n" + smuggled),
        MalformedHead("Content-Length 2^64-1", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551615\r\n\r\nabc", 413),
        MalformedHead("Transfer-Encoding: gzip, chunked",
                      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        MalformedHead("Transfer-Encoding: identity", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\nabc", 501),
    ]
}

@Suite("HTTP framing, lingering close, deadlines and the connection limit")
struct FramingTests {
    @Test(arguments: MalformedHead.all)
    func refusesMalformedFramingWithOneProblemAndCloses(_ head: MalformedHead) async throws {
        try await withServer { _, port in
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            try await connection.send(head.request)
            let response = try await connection.readHead(timeout: .seconds(5))
            #expect(response.status == head.status)
            #expect(response.header("Content-Type") == "application/problem+json")
            #expect(response.header("Connection")?.lowercased() == "close")
            #expect(response.headers.filter { $0.0.lowercased() == "connection" }.count == 1)
            let body = try await connection.readBody(response, timeout: .seconds(5))
            let problem = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
            #expect(problem["status"] as? Int == head.status)
            #expect((problem["type"] as? String)?.hasPrefix("https://fanoutd.dev/problems/") == true)
            #expect(problem["title"] is String)
            #expect(problem["detail"] is String)
            // Nothing after the refusal: the smuggled request is not run, the connection ends.
            #expect(try await connection.peerClosed(within: .seconds(5)))
        }
    }

    @Test func stillServesWellFormedRequests() async throws {
        try await withServer { _, port in
            let chunked = try await RawConnection.connect(port: port)
            defer { chunked.close() }
            try await chunked.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
            let head = try await chunked.readHead()
            #expect(head.status == 200)
            #expect(String(decoding: try await chunked.readBody(head), as: UTF8.self) == "hello")
            // The same Content-Length twice is one length (RFC 9110 §8.6).
            try await chunked.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok")
            let again = try await chunked.readHead()
            #expect(again.status == 200)
            #expect(String(decoding: try await chunked.readBody(again), as: UTF8.self) == "ok")
            // Trailing spaces, an empty value and bare LF line ends are no NUL.
            try await chunked.send("GET /headers HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Probe: v  \r\n\r\n")
            let spaced = try await chunked.readHead()
            #expect(spaced.status == 200)
            #expect(String(decoding: try await chunked.readBody(spaced), as: UTF8.self).hasPrefix("v"))
            try await chunked.send("GET /headers HTTP/1.1\nHost: x\nX-Probe: bare\nX-Empty:\n\n")
            let bare = try await chunked.readHead()
            #expect(bare.status == 200)
            #expect(String(decoding: try await chunked.readBody(bare), as: UTF8.self) == "bare")
            let old = try await HTTPExchange.send(port: port, method: "GET", path: "/hello", version: "HTTP/1.0")
            #expect(old.head.status == 200)
        }
    }

    /// libmicrohttpd answers a Content-Length that is not all digits itself, before any callback, so
    /// it stays text/html; what holds is a 400 and the connection closed (see RequestFraming).
    @Test(arguments: ["+5", "-1", "0x26", "5, 5"])
    func refusesAnInvalidContentLength(_ value: String) async throws {
        try await withServer { _, port in
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            try await connection.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(value)\r\n\r\nhello" + MalformedHead.smuggled)
            let response = try await connection.readHead(timeout: .seconds(5))
            #expect(response.status == 400)
            #expect(try await connection.peerClosed(within: .seconds(5)))
        }
    }
}

/// Sends a 36 MB body without `Expect` to a route that answers 413 on the head; true when the
/// whole 413 response arrived (whatever happened to the rest of the body).
private func earlyAnswerArrives(port: Int, body: [UInt8]) async throws -> Bool {
    let connection = try await RawConnection.connect(port: port)
    defer { connection.close() }
    try await connection.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n")
    // Like curl: upload in pieces, stop at the first answer; a reset before it is a lost answer.
    var offset = 0
    while offset < body.count, !connection.hasResponseBytes() {
        let end = min(offset + 64 * 1024, body.count)
        do { try await connection.send(Array(body[offset..<end])) } catch is RawConnection.Failure { return false }
        offset = end
    }
    do {
        let head = try await connection.readHead(timeout: .seconds(10))
        let text = String(decoding: try await connection.readBody(head, timeout: .seconds(10)), as: UTF8.self)
        return head.status == 413 && text == "too large"
    } catch is RawConnection.Failure {
        return false
    }
}

extension FramingTests {
    @Test func anEarly413ReachesAClientStillSendingItsBody() async throws {
        let body = [UInt8](repeating: UInt8(ascii: "a"), count: 36 * 1024 * 1024)
        try await withServer { server, port in
            var received = 0
            for _ in 0..<20 where try await earlyAnswerArrives(port: port, body: body) { received += 1 }
            #expect(received == 20, "every try receives the whole 413")
            #expect(await eventually(within: .seconds(5)) { server.lingeringSockets == 0 }, "lingering is bounded")
        }
    }
}

extension FramingTests {
    @Test func aSlowlorisHeadIsClosedAfterTheRequestTimeoutButAnIdleKeptAliveConnectionIsNot() async throws {
        try await withServer({ $0.requestTimeoutSeconds = 1; $0.connectionTimeoutSeconds = 30 }) { _, port in
            let slow = try await RawConnection.connect(port: port)
            defer { slow.close() }
            try await slow.send("GET /hello HTTP/1.1\r\nHost: x\r\nX-Probe: 1")
            let idle = try await RawConnection.connect(port: port)
            defer { idle.close() }
            try await idle.send(RawRequest.text(method: "GET", path: "/hello"))
            let first = try await idle.readHead()
            #expect(first.status == 200)
            _ = try await idle.readBody(first)
            let started = ContinuousClock.now
            #expect(try await slow.peerClosed(within: .seconds(10)), "the partial head is given up after the request timeout")
            #expect(ContinuousClock.now - started >= .milliseconds(500))
            // Idle between requests longer than the request timeout: the idle timeout (30 s) applies.
            try await Task.sleep(for: .milliseconds(2500))
            try await idle.send(RawRequest.text(method: "GET", path: "/hello"))
            #expect(try await idle.readHead().status == 200)
        }
    }

    /// MHD's timeout restarts with each byte; the head deadline does not.
    @Test func aHeadDrippedByteByByteIsClosedAtTheRequestTimeout() async throws {
        try await withServer({ $0.requestTimeoutSeconds = 1; $0.connectionTimeoutSeconds = 30 }) { _, port in
            let slow = try await RawConnection.connect(port: port)
            defer { slow.close() }
            let started = ContinuousClock.now
            var closed = false
            for byte in "GET /hello HTTP/1.1\r\nHost: x\r\nX-Probe: 0123456789012345678901234567890123456789".utf8 {
                if try await slow.peerClosed(within: .milliseconds(200)) {
                    closed = true
                    break
                }
                do { try await slow.send([byte]) } catch is RawConnection.Failure { closed = true; break }
            }
            #expect(closed, "the head is given up well before the drip ends (~14 s)")
            #expect(ContinuousClock.now - started >= .milliseconds(800))
        }
    }

    /// Between kept-alive requests the next head is due within the idle plus the request timeout.
    @Test func aNextHeadDrippedOnAKeptAliveConnectionIsClosed() async throws {
        try await withServer({ $0.requestTimeoutSeconds = 1; $0.connectionTimeoutSeconds = 2 }) { _, port in
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            try await connection.send(RawRequest.text(method: "GET", path: "/hello"))
            let head = try await connection.readHead()
            #expect(head.status == 200)
            _ = try await connection.readBody(head)
            var closed = false
            for byte in String(repeating: "GET /hello HTTP/1.1 ", count: 4).utf8 {
                if try await connection.peerClosed(within: .milliseconds(200)) {
                    closed = true
                    break
                }
                do { try await connection.send([byte]) } catch is RawConnection.Failure { closed = true; break }
            }
            #expect(closed, "given up after ~3 s, well before the drip ends (~16 s)")
        }
    }

    @Test func aConnectionOverTheLimitGetsAPrompt503() async throws {
        try await withServer({ $0.connectionLimit = 50; $0.overLimitHeadroom = 16; $0.requestTimeoutSeconds = 60 }) { server, port in
            var holders: [RawConnection] = []
            defer { for holder in holders { holder.close() } }
            for _ in 0..<50 {
                let holder = try await RawConnection.connect(port: port)
                try await holder.send("GET /hello HTTP/1.1\r\n")
                holders.append(holder)
            }
            #expect(await eventually(within: .seconds(10)) { server.openConnections == 50 })
            let probe = try await RawConnection.connect(port: port)
            defer { probe.close() }
            try await probe.send(RawRequest.text(method: "GET", path: "/hello"))
            let head = try await probe.readHead(timeout: .seconds(5))
            #expect(head.status == 503)
            #expect(head.header("Retry-After") == "1")
            #expect(head.header("Content-Type") == "application/problem+json")
            _ = try await probe.readBody(head)
            #expect(try await probe.peerClosed(within: .seconds(5)))
            // A slot freed is a slot served again.
            holders.removeFirst().close()
            #expect(await eventually(within: .seconds(10)) { server.openConnections == 49 })
            let exchange = try await HTTPExchange.send(port: port, method: "GET", path: "/hello")
            #expect(exchange.head.status == 200)
        }
    }
}

extension FramingTests {
    /// Clients that leave with a request half sent, accepted or still in the listen backlog at the
    /// limit, must not hold their slots until a timeout (MHD 0.9.75 alone keeps them in CLOSE-WAIT).
    @Test func clientsThatLeaveMidRequestFreeTheirSlots() async throws {
        try await withServer({ $0.connectionLimit = 20; $0.overLimitHeadroom = 0; $0.requestTimeoutSeconds = 60 }) { server, port in
            var clients: [RawConnection] = []
            for index in 0..<60 {
                let client = try await RawConnection.connect(port: port)
                try await client.send(index % 3 == 0 ? "" : "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Le")
                clients.append(client)
            }
            #expect(await eventually(within: .seconds(10)) { server.openConnections == 20 }, "at the limit, the rest wait in the backlog")
            for client in clients { client.close() }
            #expect(await eventually(within: .seconds(5)) { server.openConnections == 0 }, "every slot is freed, backlog included")
            let exchange = try await HTTPExchange.send(port: port, method: "GET", path: "/hello")
            #expect(exchange.head.status == 200)
        }
    }
}

extension FramingTests {
    /// A chunk that announces more than the limit, or a chunked body far past it, is answered at once
    /// (MHD cannot queue a response mid-upload: the server writes the 413 itself and closes).
    @Test(arguments: [
        "ffffffffffffffff\r\nabc",
        String(repeating: "100\r\n" + String(repeating: "b", count: 256) + "\r\n", count: 9),
    ])
    func aHopelessChunkedBodyIsAnswered413AtOnce(_ body: String) async throws {
        try await withServer { server, port in
            let connection = try await RawConnection.connect(port: port)
            defer { connection.close() }
            try await connection.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
            let head = try await connection.readHead(timeout: .seconds(5))
            #expect(head.status == 413)
            #expect(head.header("Content-Type") == "application/problem+json")
            let problem = try JSONSerialization.jsonObject(with: Data(try await connection.readBody(head, timeout: .seconds(5)))) as? [String: Any]
            #expect(problem?["status"] as? Int == 413)
            #expect(try await connection.peerClosed(within: .seconds(5)))
        }
    }
}
